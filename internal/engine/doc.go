// Package engine holds what every part of the event-sourcing engine shares:
// the Message that flows through it, the Handler and Middleware shapes, and the
// error kinds the parts agree on.
//
// The engine is plain Go. It must not import anything from k8s.io or
// sigs.k8s.io, so it can be tested, benchmarked and reused without a cluster;
// TestEngineImportsNothingFromKubernetes enforces that.
package engine
