// Package bench holds side-by-side throughput benchmarks of the engine and of
// Watermill v1.5.1, so both are measured in one `go test -bench` run on the
// same machine. It is its own module so the product's go.mod never carries
// Watermill; see README.md for what is compared and how to run it.
package bench
