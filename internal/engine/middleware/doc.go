// Package middleware holds the router middleware a Pipeline is built from:
// Deserialize, Logging, Retry, Metrics, Dedupe, Timeout, Filter, Recover,
// DeadLetter, and Trace, which the engine puts around every chain. Each is
// an engine.Middleware in its own file.
//
// The default chain (Deserialize, Logging, Retry, Metrics, Dedupe) runs for
// every event of every projection, so each middleware does its setup when it
// is built and keeps the success path free of avoidable allocations.
package middleware
