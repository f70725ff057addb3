package httpapi

import (
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

// verbCreate is the verb of the actions that add or deliver events.
const verbCreate = "create"

// The actions of the API, as RBAC rules name them (docs/authorization.md).
func ingestAction(ns, stream string) Action {
	return Action{Verb: verbCreate, Resource: "streams", Subresource: "events", Namespace: ns, Name: stream}
}

func readAction(ns, stream string) Action {
	return Action{Verb: "get", Resource: "streams", Subresource: "events", Namespace: ns, Name: stream}
}

func queryAction(ns, projection string) Action {
	return Action{Verb: "get", Resource: "projections", Subresource: "state", Namespace: ns, Name: projection}
}

func redriveProjectionAction(ns, projection string) Action {
	return Action{Verb: verbCreate, Resource: "projections", Subresource: "redrive", Namespace: ns, Name: projection}
}

func redriveReactorAction(ns, reactor string) Action {
	return Action{Verb: verbCreate, Resource: "reactors", Subresource: "redrive", Namespace: ns, Name: reactor}
}

// Guard decides whether a request may perform an action. It answers nil to
// let the request through, or the problem to send (401, 403, or 503 when it
// cannot decide right now).
type Guard interface {
	Check(r *http.Request, a Action) *Problem
}

// AllowAll lets every request through: --ingest-auth=none, which the manager
// accepts only on a loopback address.
type AllowAll struct{}

// Check allows a.
func (AllowAll) Check(*http.Request, Action) *Problem { return nil }
