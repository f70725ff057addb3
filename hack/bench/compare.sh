#!/usr/bin/env bash
# Runs our engine and Watermill in alternating rounds, so that each pair is
# measured close together in time on a noisy machine, and prints each round's
# events/s and ratio, then the median ratio.
#   hack/bench/compare.sh [rounds] [benchtime]
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-5}
benchtime=${2:-3s}
go test -c -o /tmp/bench.test . >/dev/null
rate() { awk '/events\/s/ { for (i = 1; i <= NF; i++) if ($(i+1) == "events/s") print $i }'; }
ratios=()
printf '%-6s %14s %14s %8s\n' round engine watermill ratio
for r in $(seq 1 "$rounds"); do
  ours=$(/tmp/bench.test -test.run '^$' -test.bench '^BenchmarkEngineThroughput$' -test.benchtime="$benchtime" | rate)
  theirs=$(/tmp/bench.test -test.run '^$' -test.bench '^BenchmarkWatermillThroughput$' -test.benchtime="$benchtime" | rate)
  ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.1f", a / b }')
  ratios+=("$ratio")
  printf '%-6s %14.0f %14.0f %7sx\n' "$r" "$ours" "$theirs" "$ratio"
done
printf 'median ratio: %sx\n' "$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')"
