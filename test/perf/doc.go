// Package perf measures the product the way a user meets it: the manager
// binary as its own process, the load generator in another (this test
// binary again), and a real kube-apiserver and etcd beside them. Its
// benchmarks are run by `make bench-manager`, `make bench-entities`,
// `make bench-nats` and the other bench- targets;
// `make test` only compiles them. Figures are reported, never asserted:
// machines are noisy.
package perf
