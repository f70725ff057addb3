package httpapi

import (
	"context"
	"net/http"
)

// Action is what a request wants to do, in the terms RBAC rules use: a verb
// on a resource and subresource of group eventsourcing.dev, in a namespace.
type Action struct {
	Verb        string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
}

// The verbs, resources and subresources of the API's actions.
const (
	verbCreate = "create"
	verbGet    = "get"
	verbList   = "list"

	resourceStreams     = "streams"
	resourceProjections = "projections"
	resourceReactors    = "reactors"

	subresourceEvents  = "events"
	subresourceState   = "state"
	subresourceRedrive = "redrive"
)

// The actions of the API, as RBAC rules name them (docs/authorization.md).
func ingestAction(ns, stream string) Action {
	return Action{Verb: verbCreate, Resource: resourceStreams, Subresource: subresourceEvents, Namespace: ns, Name: stream}
}

func readAction(ns, stream string) Action {
	return Action{Verb: verbGet, Resource: resourceStreams, Subresource: subresourceEvents, Namespace: ns, Name: stream}
}

func queryAction(ns, projection string) Action {
	return Action{Verb: verbGet, Resource: resourceProjections, Subresource: subresourceState, Namespace: ns, Name: projection}
}

// The list actions name no object: the whole namespace's streams,
// projections or reactors, as `kubectl get` lists them.
func listStreamsAction(ns string) Action {
	return Action{Verb: verbList, Resource: resourceStreams, Subresource: subresourceEvents, Namespace: ns}
}

func listProjectionsAction(ns string) Action {
	return Action{Verb: verbList, Resource: resourceProjections, Subresource: subresourceState, Namespace: ns}
}

func listReactorsAction(ns string) Action {
	return Action{Verb: verbList, Resource: resourceReactors, Subresource: subresourceState, Namespace: ns}
}

func redriveProjectionAction(ns, projection string) Action {
	return Action{Verb: verbCreate, Resource: resourceProjections, Subresource: subresourceRedrive, Namespace: ns, Name: projection}
}

func redriveReactorAction(ns, reactor string) Action {
	return Action{Verb: verbCreate, Resource: resourceReactors, Subresource: subresourceRedrive, Namespace: ns, Name: reactor}
}

// Guard decides whether a request may perform an action. It answers the
// caller's user name (empty when requests are not authenticated) and nil
// to let the request through, or the problem to send (401, 403, or 503
// when it cannot decide right now).
type Guard interface {
	Check(r *http.Request, a Action) (user string, p *Problem)
}

// AllowAll lets every request through: --ingest-auth=none, which the manager
// accepts only on a loopback address.
type AllowAll struct{}

// Check allows a; the caller is nobody known.
func (AllowAll) Check(*http.Request, Action) (string, *Problem) { return "", nil }

// userKey is the context key of the user name a Guard found.
type userKey struct{}

// withUser returns r carrying user for the endpoints, or r itself when
// there is no user.
func withUser(r *http.Request, user string) *http.Request {
	if user == "" {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), userKey{}, user))
}

// userOf is the user name a Guard found for the request; empty without one.
func userOf(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}
