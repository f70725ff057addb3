package sinktoken

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// PodTokenFile is where Kubernetes mounts a pod's ServiceAccount token.
const PodTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// serviceAccountUser prefixes the user name of a ServiceAccount:
// system:serviceaccount:<namespace>:<name>.
const serviceAccountUser = "system:serviceaccount:"

// Account names a ServiceAccount.
type Account struct {
	Namespace, Name string
}

// String is "<namespace>/<name>", as ParseAccount reads it.
func (a Account) String() string { return a.Namespace + "/" + a.Name }

func (a Account) validate() error {
	if errs := validation.IsDNS1123Label(a.Namespace); len(errs) > 0 {
		return fmt.Errorf("ServiceAccount namespace %q: %s", a.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(a.Name); len(errs) > 0 {
		return fmt.Errorf("ServiceAccount name %q: %s", a.Name, strings.Join(errs, "; "))
	}
	return nil
}

// ParseAccount reads "<namespace>/<name>".
func ParseAccount(s string) (Account, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		return Account{}, fmt.Errorf("%q: want <namespace>/<name>", s)
	}
	a := Account{Namespace: ns, Name: name}
	return a, a.validate()
}

// PodAccount reads which ServiceAccount a pod runs as from its mounted token
// (tokenFile, normally PodTokenFile): the subject of the JWT, which the
// manager only reads, never verifies, as the kubelet wrote it. A missing
// file is an error wrapping os.ErrNotExist (not in a pod, or no token
// mounted).
func PodAccount(tokenFile string) (Account, error) {
	data, err := os.ReadFile(tokenFile)
	if err != nil {
		return Account{}, err
	}
	sub, err := jwtSubject(strings.TrimSpace(string(data)))
	if err != nil {
		return Account{}, fmt.Errorf("read the ServiceAccount of %s: %w", tokenFile, err)
	}
	rest, ok := strings.CutPrefix(sub, serviceAccountUser)
	ns, name, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return Account{}, fmt.Errorf("read the ServiceAccount of %s: subject %q is not %s<namespace>:<name>",
			tokenFile, sub, serviceAccountUser)
	}
	a := Account{Namespace: ns, Name: name}
	return a, a.validate()
}

// jwtSubject returns the "sub" claim of a JWT, unverified.
func jwtSubject(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("JWT payload: %w", err)
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("JWT payload: %w", err)
	}
	return claims.Sub, nil
}
