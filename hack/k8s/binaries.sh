#!/usr/bin/env bash
# Provides kube-apiserver, etcd and kubectl for envtest, the e2e tests and
# `make run`, and prints the directory that holds them on stdout (everything
# else goes to stderr). It takes the first of:
#
#   1. $KUBEBUILDER_ASSETS, when it holds all three (whatever their version:
#      whoever set it chose them);
#   2. OUT_DIR, when its binaries report the pinned versions;
#   3. setup-envtest's download (the kubebuilder convention), copied into
#      OUT_DIR; it gives up when its site does not answer within
#      SETUP_ENVTEST_TIMEOUT seconds (default 30), since machines without
#      internet access never reach it;
#   4. a build from the Go module proxy into OUT_DIR, of what is still
#      missing, with its progress on stderr (kube-apiserver takes 10-25
#      minutes the first time; rebuilds reuse the Go build cache).
#
#   hack/k8s/binaries.sh [OUT_DIR]     (default: bin/k8s/<kubernetes version>)
#
# The Kubernetes version is written in one place: the k8s.io/kubernetes
# require of hack/k8s/go.mod (Go code reads it with internal/k8sbinaries).
# etcd is built at the go.etcd.io/etcd/server/v3 version that go.mod
# requires, the one k8s.io/kubernetes itself requires.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

# hack/k8s is its own module: never let a go.work elsewhere pull it in or out.
export GOWORK=off
# Static binaries, as the upstream releases are built.
export CGO_ENABLED=0

# tools/setup-envtest's release for controller-runtime v0.25, which go.mod requires.
setup_envtest_version=v0.25.1
setup_envtest_timeout=${SETUP_ENVTEST_TIMEOUT:-30}
# SETUP_ENVTEST_INDEX names another index of envtest releases (a mirror).
index_flag=(${SETUP_ENVTEST_INDEX:+--index "$SETUP_ENVTEST_INDEX"})

note_prefix=k8s-binaries
# note, build (with its progress) and duration, shared with the other tools
# built from the Go module proxy.
# shellcheck source=hack/lib/gobuild.sh
source "$root/hack/lib/gobuild.sh"

k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)          # v1.37.2
etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3) # v3.7.0
out=${1:-$root/bin/k8s/$k8s_version}
names=(kube-apiserver etcd kubectl)

# 1. What the caller pointed at.
if [[ -n ${KUBEBUILDER_ASSETS:-} ]]; then
	lacking=()
	for name in "${names[@]}"; do
		[[ -x $KUBEBUILDER_ASSETS/$name ]] || lacking+=("$name")
	done
	if ((${#lacking[@]} == 0)); then
		note "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS ($("$KUBEBUILDER_ASSETS/kube-apiserver" --version 2>/dev/null || echo "unknown version"))"
		echo "$KUBEBUILDER_ASSETS"
		exit 0
	fi
	note "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks ${lacking[*]}: not used"
fi

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Binaries that came from setup-envtest carry etcd at the version its
# tarball holds, not the one go.mod pins; this file says so.
envtest_marker=$out/.from-setup-envtest

# has_version NAME: does OUT_DIR/NAME exist and report the pinned version?
has_version() {
	local bin=$out/$1 got
	[[ -x $bin ]] || return 1
	case $1 in
	kube-apiserver) got=$("$bin" --version 2>/dev/null) && [[ $got == "Kubernetes $k8s_version" ]] ;;
	kubectl) got=$("$bin" version --client 2>/dev/null) && [[ $got == *"Client Version: $k8s_version"* ]] ;;
	etcd)
		got=$("$bin" --version 2>/dev/null) &&
			{ [[ -e $envtest_marker ]] || [[ $got == *"etcd Version: ${etcd_version#v}"* ]]; }
		;;
	esac
}

# missing: the names in OUT_DIR that are absent or at another version.
missing() {
	local name
	for name in "${names[@]}"; do
		has_version "$name" || echo "$name"
	done
}

# 2. Already there.
if [[ -z $(missing) ]]; then
	echo "$out"
	exit 0
fi

# 3. setup-envtest's download. Installing the tool goes through the Go module
# proxy, as the build below does; the download itself needs its site.
from_setup_envtest() {
	local bindir=$root/bin tool store listing path name
	tool=$bindir/setup-envtest-$setup_envtest_version
	if [[ ! -x $tool ]]; then
		note "installing setup-envtest $setup_envtest_version into bin/"
		mkdir -p "$bindir"
		if ! GOBIN=$tmp timeout 300 go install "sigs.k8s.io/controller-runtime/tools/setup-envtest@$setup_envtest_version" >"$tmp/install.log" 2>&1; then
			note "could not install setup-envtest: $(tail -n 1 "$tmp/install.log")"
			return 1
		fi
		mv "$tmp/setup-envtest" "$tool"
		ln -sf "$(basename "$tool")" "$bindir/setup-envtest"
	fi
	note "asking setup-envtest for Kubernetes ${k8s_version#v} (gives up after ${setup_envtest_timeout}s)"
	store=$tmp/envtest
	# Its index answers quickly where the site is reachable; the short limit
	# is on that question, not on a download that is under way.
	if ! listing=$(timeout "$setup_envtest_timeout" "$tool" list "${k8s_version#v}" --bin-dir "$store" "${index_flag[@]}" 2>"$tmp/envtest.log"); then
		note "setup-envtest cannot reach its download site: $(tail -n 1 "$tmp/envtest.log" | cut -c 1-200)"
		return 1
	fi
	if [[ $listing != *"(available)"* ]]; then
		note "setup-envtest offers no Kubernetes ${k8s_version#v} for this platform"
		return 1
	fi
	if ! path=$(timeout 900 "$tool" use "${k8s_version#v}" --bin-dir "$store" "${index_flag[@]}" -p path 2>"$tmp/envtest.log"); then
		note "setup-envtest's download failed: $(tail -n 1 "$tmp/envtest.log" | cut -c 1-200)"
		return 1
	fi
	# Its store is read-only: writable again, the exit trap can remove it.
	chmod -R u+w "$store"
	local got=()
	for name in "${names[@]}"; do
		if [[ -x $path/$name ]]; then
			cp -f "$path/$name" "$out/.$name.tmp"
			mv -f "$out/.$name.tmp" "$out/$name"
			got+=("$name")
		fi
	done
	echo "setup-envtest $setup_envtest_version, Kubernetes ${k8s_version#v}" >"$envtest_marker"
	note "downloaded ${got[*]} into $out"
}

from_setup_envtest || true

# 4. Build what is still missing.
read -r -a todo <<<"$(missing | tr '\n' ' ')"
if ((${#todo[@]} == 0)); then
	echo "$out"
	exit 0
fi
note "building ${todo[*]} from the Go module proxy (Kubernetes $k8s_version, etcd $etcd_version) into $out"
if [[ " ${todo[*]} " == *" kube-apiserver "* ]]; then
	note "kube-apiserver takes 10-25 minutes the first time; later builds reuse the Go build cache"
fi
if [[ $k8s_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
	major=${BASH_REMATCH[1]}
	minor=${BASH_REMATCH[2]}
else
	note "unexpected k8s.io/kubernetes version $k8s_version"
	exit 1
fi

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

build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build etcd go.etcd.io/etcd/server/v3 "$etcd_ldflags"
build kubectl k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
echo "$out"
