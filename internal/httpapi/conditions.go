package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// appendCondition reads an append's If-Match / If-None-Match header
// (RFC 9110, docs/entities.md): one strong ETag holding a version, or *.
// Weak ETags, lists and both headers at once are refused.
func appendCondition(r *http.Request) (versions.Expect, *Problem) {
	ifMatch, hasMatch := singleHeader(r, "If-Match")
	ifNoneMatch, hasNoneMatch := singleHeader(r, "If-None-Match")
	switch {
	case hasMatch && hasNoneMatch:
		return versions.Any, badCondition("give If-Match or If-None-Match, not both")
	case hasNoneMatch:
		if ifNoneMatch != "*" {
			return versions.Any, badCondition(fmt.Sprintf(
				"If-None-Match on an append must be *, got %q; to append at a version use If-Match", ifNoneMatch))
		}
		return versions.NoEvents, nil
	case hasMatch:
		if ifMatch == "*" {
			return versions.Exists, nil
		}
		v, err := parseETag(ifMatch)
		if err != nil {
			return versions.Any, badCondition("If-Match: " + err.Error())
		}
		return versions.Exactly(v), nil
	}
	return versions.Any, nil
}

// singleHeader returns a header's one value; several header lines count as
// a list and are returned joined, for parseETag to refuse.
func singleHeader(r *http.Request, name string) (string, bool) {
	vs := r.Header.Values(name)
	if len(vs) == 0 {
		return "", false
	}
	return strings.TrimSpace(strings.Join(vs, ",")), true
}

// parseETag reads one strong ETag holding a version: "N".
func parseETag(s string) (uint64, error) {
	switch {
	case strings.HasPrefix(s, "W/"):
		return 0, fmt.Errorf("%s is a weak ETag; versions are strong ETags such as \"3\"", s)
	case strings.Contains(s, ","):
		return 0, fmt.Errorf("%s is a list; give one ETag such as \"3\"", s)
	case len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"':
		return 0, fmt.Errorf("%s is not a quoted ETag; a version is written \"3\"", s)
	}
	v, err := strconv.ParseUint(s[1:len(s)-1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s does not hold a version (a whole number such as \"3\")", s)
	}
	return v, nil
}

// etag is a version as a strong ETag.
func etag(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }

func badCondition(detail string) *Problem {
	return newProblem(http.StatusBadRequest, kindInvalidRequest, detail)
}

// versionConflict is the 412 of an append whose condition failed.
func versionConflict(c *versions.ConflictError) *Problem {
	p := newProblem(http.StatusPreconditionFailed, kindVersionConflict,
		fmt.Sprintf("key %q is at version %d; the append expected %s; nothing was stored", c.Key, c.Current, c.Expected))
	p.etag = etag(c.Current)
	return p
}

// etagMatches reports whether an If-None-Match header names tag: *, or a
// list holding it (weak comparison, as RFC 9110 has for If-None-Match).
func etagMatches(header, tag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == tag {
			return true
		}
	}
	return false
}
