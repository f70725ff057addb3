package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// How long answers of the API server are remembered. Short, so that a
// removed RoleBinding or a deleted ServiceAccount takes effect within
// seconds; long enough that a busy client costs one review per period.
const (
	tokenCacheTTL = 30 * time.Second
	allowCacheTTL = 30 * time.Second
	denyCacheTTL  = 10 * time.Second
	reviewTimeout = 10 * time.Second
)

// The manager asks the API server about its callers.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// KubernetesGuard checks a bearer token with a TokenReview and the action
// with a SubjectAccessReview, through k8s.io/apiserver's delegating
// authenticator and authorizer (the ones aggregated API servers and
// kube-rbac-proxy use), which cache both answers.
type KubernetesGuard struct {
	authn authenticator.Request
	authz authorizer.Authorizer
	log   logr.Logger
}

// NewKubernetesGuard builds a KubernetesGuard that sends its reviews with
// cfg, the manager's own credentials (RBAC: create tokenreviews and
// subjectaccessreviews).
func NewKubernetesGuard(cfg *rest.Config, log logr.Logger) (*KubernetesGuard, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("build the review client: %w", err)
	}
	tokenReviews, err := authenticationv1.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("build the TokenReview client: %w", err)
	}
	accessReviews, err := authorizationv1.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("build the SubjectAccessReview client: %w", err)
	}
	backoff := &wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                &apiserver.AnonymousAuthConfig{Enabled: false},
		TokenAccessReviewClient:  tokenReviews,
		TokenAccessReviewTimeout: reviewTimeout,
		WebhookRetryBackoff:      backoff,
		CacheTTL:                 tokenCacheTTL,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("build the authenticator: %w", err)
	}
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: accessReviews,
		AllowCacheTTL:             allowCacheTTL,
		DenyCacheTTL:              denyCacheTTL,
		WebhookRetryBackoff:       backoff,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("build the authorizer: %w", err)
	}
	return &KubernetesGuard{authn: authn, authz: authz, log: log}, nil
}

// Check authenticates the request's bearer token, then asks whether its user
// may perform a, and answers the user's name.
func (g *KubernetesGuard) Check(r *http.Request, a Action) (string, *Problem) {
	u, p := g.authorize(r, authorizer.AttributesRecord{
		Verb:            a.Verb,
		Namespace:       a.Namespace,
		APIGroup:        esv1.GroupVersion.Group,
		APIVersion:      esv1.GroupVersion.Version,
		Resource:        a.Resource,
		Subresource:     a.Subresource,
		Name:            a.Name,
		ResourceRequest: true,
		Path:            r.URL.Path,
	})
	if p != nil {
		return "", p
	}
	return u.GetName(), nil
}

// ProtectPaths serves next only to callers whose bearer token the API
// server accepts and who may use the request's path as a non-resource URL,
// the request's method in lower case being the verb ("get /metrics"), as an
// RBAC rule with nonResourceURLs grants it. It guards the metrics endpoint
// (/metrics, /backup) with the answers the HTTP API gives: 401 for a
// missing or refused token, 403 for a path the caller may not use, 503 when
// the API server did not answer.
func (g *KubernetesGuard) ProtectPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attrs := authorizer.AttributesRecord{Verb: strings.ToLower(r.Method), Path: r.URL.Path}
		if _, p := g.authorize(r, attrs); p != nil {
			p.write(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorize authenticates the request's bearer token, then asks whether its
// user may do what attrs describe (attrs.User is set here), and answers
// the user.
func (g *KubernetesGuard) authorize(r *http.Request, attrs authorizer.AttributesRecord) (user.Info, *Problem) {
	u, p := g.authenticate(r)
	if p != nil {
		return nil, p
	}
	attrs.User = u
	decision, reason, err := g.authz.Authorize(r.Context(), attrs)
	if err != nil {
		g.log.Error(err, "SubjectAccessReview failed")
		return nil, unavailable("cannot check permissions right now: the Kubernetes API did not answer")
	}
	if decision != authorizer.DecisionAllow {
		detail := refusal(attrs)
		if reason != "" {
			detail += ": " + reason
		}
		return nil, newProblem(http.StatusForbidden, kindForbidden, detail)
	}
	return u, nil
}

// refusal says who may not do what: a resource request in RBAC's terms, a
// non-resource one as verb and path.
func refusal(a authorizer.AttributesRecord) string {
	if a.ResourceRequest && a.Name == "" {
		return fmt.Sprintf("%s cannot %s %s/%s in namespace %q", a.User.GetName(), a.Verb, a.Resource, a.Subresource, a.Namespace)
	}
	if a.ResourceRequest {
		return fmt.Sprintf("%s cannot %s %s/%s %q in namespace %q",
			a.User.GetName(), a.Verb, a.Resource, a.Subresource, a.Name, a.Namespace)
	}
	return fmt.Sprintf("%s cannot %s %s", a.User.GetName(), a.Verb, a.Path)
}

// authenticate asks the API server who the request's bearer token belongs
// to. A token it refuses is a 401, whatever error the authenticator wraps
// the refusal in; only a review that got no answer is a 503.
func (g *KubernetesGuard) authenticate(r *http.Request) (user.Info, *Problem) {
	if !hasBearerToken(r) {
		return nil, unauthenticated("send a Kubernetes bearer token: Authorization: Bearer <token>")
	}
	resp, ok, err := g.authn.AuthenticateRequest(r)
	if err != nil && apiUnreachable(err) {
		g.log.Error(err, "TokenReview failed")
		return nil, unavailable("cannot verify credentials right now: the Kubernetes API did not answer")
	}
	if err != nil || !ok {
		g.log.V(1).Info("token refused", "reason", fmt.Sprint(err))
		return nil, unauthenticated("the bearer token was not accepted by the Kubernetes API")
	}
	return resp.User, nil
}

func hasBearerToken(r *http.Request) bool {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	return ok && strings.EqualFold(scheme, "bearer") && strings.TrimSpace(token) != ""
}

func unauthenticated(detail string) *Problem {
	p := newProblem(http.StatusUnauthorized, kindUnauthenticated, detail)
	p.authenticate = `Bearer realm="eventsourcing"`
	return p
}

func unavailable(detail string) *Problem {
	p := newProblem(http.StatusServiceUnavailable, kindUnavailable, detail)
	p.retryAfter = 1
	return p
}

// apiUnreachable tells a failed review call (network, timeout, an API error
// status) from a token the API server looked at and refused, which comes
// back as a plain error with the review's message.
func apiUnreachable(err error) bool {
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) {
		for _, e := range agg.Errors() {
			if apiUnreachable(e) {
				return true
			}
		}
		return false
	}
	var urlErr *url.Error
	var netErr net.Error
	var status apierrors.APIStatus
	return errors.As(err, &urlErr) || errors.As(err, &netErr) || errors.As(err, &status) ||
		errors.Is(err, context.DeadlineExceeded)
}
