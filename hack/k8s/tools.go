//go:build tools

// Package k8s pins the main packages that binaries.sh builds, so `go mod tidy`
// keeps them and their dependencies in go.mod and go.sum. It is never built.
package k8s

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
