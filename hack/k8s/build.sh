#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl for envtest and the e2e tests from the Go
# module proxy (setup-envtest's download site is out of reach here). The versions
# are the ones hack/k8s/go.mod pins: k8s.io/kubernetes, and the etcd server that
# k8s.io/kubernetes itself requires.
#
#   hack/k8s/build.sh [OUT_DIR]     (default: bin/k8s/v<kubernetes version>)
#
# A binary that already exists in OUT_DIR and reports the right version is kept,
# so only the first run (or a version change) pays for the build.
# K8S_VERSION, when set (the Makefile sets it), must match go.mod.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

# hack/k8s is its own module: never let a go.work elsewhere pull it in or out.
export GOWORK=off
# Static binaries, as the upstream releases are built.
export CGO_ENABLED=0

k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)    # v1.37.2
etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3) # v3.7.0

if [[ -n "${K8S_VERSION:-}" && "v${K8S_VERSION#v}" != "$k8s_version" ]]; then
	echo "K8S_VERSION=${K8S_VERSION} but hack/k8s/go.mod pins k8s.io/kubernetes ${k8s_version}:" >&2
	echo "change the require and every staging replace (v0.x.y) in hack/k8s/go.mod, then go mod tidy" >&2
	exit 1
fi

out=${1:-$root/bin/k8s/$k8s_version}
mkdir -p "$out"

if [[ ! $k8s_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
	echo "unexpected k8s.io/kubernetes version $k8s_version" >&2
	exit 1
fi
major=${BASH_REMATCH[1]}
minor=${BASH_REMATCH[2]}

# The release date of the module stands in for the build date, so the binaries
# are reproducible.
build_date=$(go mod download -json "k8s.io/kubernetes@$k8s_version" |
	sed -n 's/.*"Info": "\(.*\)".*/\1/p' | xargs sed -n 's/.*"Time":"\([^"]*\)".*/\1/p')
build_date=${build_date:-1970-01-01T00:00:00Z}

# What hack/lib/version.sh sets in a Kubernetes release build: component-base for
# --version and `kubectl version`, client-go for the user agent.
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version"
	k8s_ldflags+=" -X $pkg.gitMajor=$major"
	k8s_ldflags+=" -X $pkg.gitMinor=$minor"
	k8s_ldflags+=" -X $pkg.gitCommit=" # unknown: no commit comes with the module
	k8s_ldflags+=" -X $pkg.gitTreeState=clean"
	k8s_ldflags+=" -X $pkg.buildDate=$build_date"
done
# -s -w as in the upstream release builds (a third smaller; panics still name
# functions). etcd's version is a constant in go.etcd.io/etcd/api/v3/version; its
# GitSHA stays "Not provided", as the module proxy knows no commit.
etcd_ldflags="-s -w"

# has_version BINARY: does $out/BINARY exist and report the pinned version?
has_version() {
	local bin=$out/$1 got
	[[ -x $bin ]] || return 1
	case $1 in
	kube-apiserver) got=$("$bin" --version 2>/dev/null) && [[ $got == "Kubernetes $k8s_version" ]] ;;
	kubectl) got=$("$bin" version --client 2>/dev/null) && [[ $got == *"Client Version: $k8s_version"* ]] ;;
	etcd) got=$("$bin" --version 2>/dev/null) && [[ $got == *"etcd Version: ${etcd_version#v}"* ]] ;;
	esac
}

# build BINARY PACKAGE LDFLAGS
build() {
	local name=$1 pkg=$2 ldflags=$3 start
	if has_version "$name"; then
		echo "k8s-binaries: $out/$name is up to date"
		return
	fi
	echo "k8s-binaries: building $name from $pkg"
	start=$SECONDS
	# Into a temporary name first: an interrupted build never leaves a binary
	# that the cache check above would have to second-guess.
	go build -trimpath -ldflags "$ldflags" -o "$out/.$name.tmp" "$pkg"
	mv -f "$out/.$name.tmp" "$out/$name"
	echo "k8s-binaries: built $name in $((SECONDS - start))s"
}

missing=()
for name in kube-apiserver etcd kubectl; do
	has_version "$name" || missing+=("$name")
done
if ((${#missing[@]})); then
	echo "k8s-binaries: building ${missing[*]} (Kubernetes $k8s_version, etcd $etcd_version) into $out"
	echo "k8s-binaries: the first build takes about 10 minutes on 2 idle cores, more on a busy machine (later ones reuse the Go build cache)"
fi

build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build etcd go.etcd.io/etcd/server/v3 "$etcd_ldflags"
build kubectl k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
