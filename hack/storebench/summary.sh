#!/usr/bin/env bash
# summary.sh: the README table from `go test -bench` output on stdin: the
# median over -count rounds of events/s, p50 and p99 for each benchmark, and
# events/s as a multiple of the 64w/bbolt/fsync-per-event baseline.
#
#   go test -run '^$' -bench . -benchtime 3s -count 3 | tee out.txt | ./summary.sh
set -euo pipefail
awk '
function median(s,   a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return a[int((n + 1) / 2)]
}
/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++count] = name }
	for (i = 3; i < NF; i++) {
		if ($(i + 1) == "events/s") eps[name] = eps[name] " " $i
		if ($(i + 1) == "p50-µs") p50[name] = p50[name] " " $i
		if ($(i + 1) == "p99-µs") p99[name] = p99[name] " " $i
	}
}
END {
	base = median(eps["Ingest/64w/bbolt/fsync-per-event"])
	printf "| %s | %s | %s | %s | %s |\n", "benchmark", "events/s", "p50 µs", "p99 µs", "x baseline"
	print "| --- | ---: | ---: | ---: | ---: |"
	for (k = 1; k <= count; k++) {
		n = order[k]; e = median(eps[n])
		printf "| %s | %.0f | %s | %s | %s |\n", n, e, (n in p50) ? median(p50[n]) : "", (n in p99) ? median(p99[n]) : "", (base > 0 && n ~ /^Ingest/) ? sprintf("%.1f", e / base) : ""
	}
}'
