// Package celexpr compiles and evaluates the CEL expressions users write in
// Pipelines (Filter) and Projections (keyExpression). Expressions see one
// variable, event, with the fields id, name, stream, sequence, time, headers,
// correlationId and payload.
package celexpr
