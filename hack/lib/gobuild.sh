# shellcheck shell=bash
# Sourced by the scripts that build tools from the Go module proxy into bin/
# (hack/k8s/binaries.sh, hack/nats/nats-server.sh): one build, with its
# progress, for every binary the tests run as a process. The caller sets
#
#   note_prefix  the word its messages on stderr start with
#   out          the directory the binaries go into
#   tmp          a scratch directory it removes when done
#
# and defines has_version NAME, which succeeds when $out/NAME is there at the
# version it pins (build then skips it).
# shellcheck disable=SC2154 # note_prefix, out and tmp are the caller's

# note MESSAGE...: one line on stderr; stdout is for the script's answer.
note() { printf '%s: %s\n' "$note_prefix" "$*" >&2; }

# duration SECONDS: 754 -> 12m34s.
duration() {
	if (($1 >= 60)); then
		printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
	else
		printf '%ds' "$1"
	fi
}

# show_progress NAME TOTAL ERRLOG: reads `go build -v` (one package per line,
# as each is compiled) and reports how far the build is: on one line that
# it rewrites every 2 seconds on a terminal, else a line every 30 seconds so
# that logs stay short. Lines that are no package name (compiler errors) go
# to ERRLOG.
show_progress() {
	local name=$1 total=$2 errlog=$3 start=$SECONDS compiled=0 line="" more reported=-1 status tty=false every=30
	if [[ -t 2 && ${TERM:-dumb} != dumb ]]; then
		tty=true
		every=2
	fi
	report() {
		local elapsed=$((SECONDS - start)) msg
		if ((total == 0)); then
			msg="$name: linking, its packages are in the Go build cache ($(duration $elapsed))"
		elif ((total > 0 && compiled >= total)); then
			msg="$name: all $total packages compiled, linking ($(duration $elapsed))"
		elif ((total > 0)); then
			msg="$name: $compiled of $total packages compiled, $((100 * compiled / total))% ($(duration $elapsed))"
		else
			msg="$name: $compiled packages compiled ($(duration $elapsed))"
		fi
		if $tty; then
			printf '\r\033[K%s: %s' "$note_prefix" "$msg" >&2
		else
			note "$msg"
		fi
		reported=$SECONDS
	}
	while :; do
		# A read that times out keeps what it got of a line in "more".
		if IFS= read -r -t 1 more; then
			line+=$more
			if [[ $line =~ ^[A-Za-z0-9._~/-]+$ ]]; then
				compiled=$((compiled + 1))
			else
				printf '%s\n' "$line" >>"$errlog"
			fi
			line=""
		else
			status=$?
			((status > 128)) || break # end of input: the build is over
			line+=$more
		fi
		if ((reported < 0 || SECONDS - reported >= every)); then
			report
		fi
	done
	[[ -z $line ]] || printf '%s\n' "$line" >>"$errlog"
	if $tty; then
		printf '\r\033[K' >&2
	fi
}

# build NAME PACKAGE LDFLAGS
build() {
	local name=$1 pkg=$2 ldflags=$3 start=$SECONDS listing total errlog=$tmp/$1.errors
	if has_version "$name"; then
		return
	fi
	note "building $name from $pkg"
	# The packages go build will compile: those not in the Go build cache
	# (a main package counts as stale even when cached: it is linked, not
	# counted). Listing them downloads the modules first (its "go:
	# downloading" lines show), as go build would.
	if listing=$(go list -deps -trimpath -f '{{if and .Stale (ne .Name "main")}}x{{end}}' "$pkg"); then
		total=$(grep -c x <<<"$listing" || true)
	else
		total=-1 # unknown: the progress leaves it out
	fi
	# Into a temporary name first: an interrupted build never leaves a binary
	# that the cache check above would have to second-guess.
	if ! go build -v -trimpath -ldflags "$ldflags" -o "$out/.$name.tmp" "$pkg" 2>&1 |
		show_progress "$name" "$total" "$errlog"; then
		cat "$errlog" >&2
		note "building $name failed"
		exit 1
	fi
	mv -f "$out/.$name.tmp" "$out/$name"
	note "built $name in $(duration $((SECONDS - start)))"
}
