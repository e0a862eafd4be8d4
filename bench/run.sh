#!/usr/bin/env bash
# run.sh runs the comparison benchmarks N times, one -count=1 pass at a
# time, so that every contender is sampled at several points in time
# instead of all of one contender's samples landing together (a build or
# a noisy neighbour then hurts everyone a little rather than one contender
# a lot). It writes everything under bench/results/ and prints:
#
#   1. benchstat over all passes: the median and 95% CI of every benchmark;
#   2. a markdown summary: each contender's medians and its difference
#      from raw_timeout in the same scenario (the README table);
#   3. benchstat of connmgr against raw_timeout, with p-values.
#
# The comparison with p-values, one column per contender against
# raw_timeout, is written to vs_raw_timeout.txt next to the raw results.
#
# Environment:
#   N          passes (default 8; benchstat needs at least 6 for a 95% CI)
#   BENCHTIME  -benchtime for each benchmark in each pass (default 1s)
#   BENCH      -bench regexp (default .)
#   BENCHSTAT  benchstat command (default: benchstat on PATH, else
#              go run golang.org/x/perf/cmd/benchstat@$BENCHSTAT_VERSION)
#
# The default run takes about 4.5 minutes on 2 idle cores.
set -euo pipefail

cd "$(dirname "$0")"

N=${N:-8}
BENCHTIME=${BENCHTIME:-1s}
BENCH=${BENCH:-.}
BENCHSTAT_VERSION=${BENCHSTAT_VERSION:-v0.0.0-20260908200009-22c9c6c9d4da}
if [[ -z ${BENCHSTAT:-} ]]; then
	if command -v benchstat >/dev/null 2>&1; then
		BENCHSTAT=benchstat
	else
		BENCHSTAT="go run golang.org/x/perf/cmd/benchstat@${BENCHSTAT_VERSION}"
	fi
fi

out=results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
raw=$out/raw.txt

# Build the test binary once, so every pass runs the same code and no pass
# pays for compilation.
bin=$(mktemp -d)/bench.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" .

{
	echo "# command: N=$N BENCHTIME=$BENCHTIME BENCH='$BENCH' ./run.sh"
	echo "# $(go version); $(uname -srm); $(nproc) CPUs; GOMAXPROCS=${GOMAXPROCS:-unset}"
	echo "# connmgr: commit $(git -C .. rev-parse --short HEAD 2>/dev/null || echo none)," \
		"root *.go sha256 $(cat ../*.go | sha256sum | cut -c1-12)"
	echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
} >"$out/env.txt"

start=$SECONDS
for i in $(seq 1 "$N"); do
	echo "pass $i/$N ($((SECONDS - start))s)" >&2
	"$bin" -test.run '^$' -test.bench "$BENCH" -test.benchmem \
		-test.count 1 -test.benchtime "$BENCHTIME" >>"$raw"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)" >>"$out/env.txt"
echo "done in $((SECONDS - start))s; results in $out" >&2

# benchstat can only put key=value name parts in columns, so name the
# contender "lib=<name>" for the comparison.
sed -E 's#^(Benchmark(InProcess|Loopback))/([A-Za-z0-9_]+)#\1/lib=\3#' "$raw" >"$out/lib.txt"
order=$(grep -oE '^Benchmark(InProcess|Loopback)/lib=[A-Za-z0-9_]+' "$out/lib.txt" |
	sed 's#.*lib=##' | awk '!seen[$0]++ && $0 != "raw_timeout"' | tr '\n' ' ' || true)
$BENCHSTAT -col "/lib@(raw_timeout ${order})" "$out/lib.txt" >"$out/vs_raw_timeout.txt"

cat "$out/env.txt"
$BENCHSTAT "$raw" | tee "$out/benchstat.txt"
echo
awk -f summary.awk "$raw" | tee "$out/summary.md"
echo
# The comparison the project is judged by, with p-values.
$BENCHSTAT -filter '/lib:(raw_timeout OR connmgr OR connmgr_ctx_timeout)' \
	-col '/lib@(raw_timeout connmgr connmgr_ctx_timeout)' "$out/lib.txt" |
	tee "$out/connmgr_vs_raw_timeout.txt"
