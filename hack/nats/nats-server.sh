#!/usr/bin/env bash
# Provides nats-server for the tests that run NATS as real processes (a
# cluster on loopback, nodes killed and restarted), and prints its path on
# stdout (everything else goes to stderr). It takes the first of:
#
#   1. $NATS_SERVER_BIN, when it names an executable (whatever its version:
#      whoever set it chose it);
#   2. OUT_DIR/nats-server, when it reports the pinned version;
#   3. a build from the Go module proxy into OUT_DIR, with its progress on
#      stderr (under a minute on two cores; rebuilds reuse the Go build
#      cache).
#
#   hack/nats/nats-server.sh [OUT_DIR]     (default: bin/nats-server/<version>)
#
# The version is the github.com/nats-io/nats-server/v2 require of go.mod:
# the server the other tests embed as a library, so both are the same
# release. Go code finds the binary with test/natscluster.Binary.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

export GOWORK=off
# A static binary, as the upstream releases are built.
export CGO_ENABLED=0

note_prefix=nats-server
# shellcheck source=hack/lib/gobuild.sh
source "$root/hack/lib/gobuild.sh"

if [[ -n ${NATS_SERVER_BIN:-} ]]; then
	if [[ -x $NATS_SERVER_BIN ]]; then
		note "using NATS_SERVER_BIN=$NATS_SERVER_BIN ($("$NATS_SERVER_BIN" --version 2>/dev/null || echo "unknown version"))"
		echo "$NATS_SERVER_BIN"
		exit 0
	fi
	note "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable: not used"
fi

version=$(go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2) # v2.15.3
out=${1:-$root/bin/nats-server/$version}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# has_version NAME: does OUT_DIR/NAME exist and report the pinned version?
has_version() {
	local bin=$out/$1 got
	[[ -x $bin ]] && got=$("$bin" --version 2>/dev/null) && [[ $got == "nats-server: $version" ]]
}

# -s -w as in the upstream release builds.
build nats-server github.com/nats-io/nats-server/v2 "-s -w"
echo "$out/nats-server"
