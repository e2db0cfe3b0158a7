#!/usr/bin/env bash
# `make bench`: Go benchmarks (micro, default bench time) and scenario
# benchmarks (BenchmarkScenario*, run once each against the emulator), then
# one table of every figure. Raw output is kept in .local/bench.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .local
out=.local/bench.txt
: >"$out"
echo "running micro benchmarks…" >&2
go test -run '^$' -bench '^Benchmark[^S]|^BenchmarkS[^c]' -benchmem ./... 2>&1 | tee -a "$out" | grep -E '^(Benchmark|FAIL|panic)' >&2 || true
echo "running scenario benchmarks…" >&2
go test -run '^$' -bench '^BenchmarkScenario' -benchtime=1x -timeout 30m ./... 2>&1 | tee -a "$out" | grep -E '^(Benchmark|FAIL|panic)' >&2 || true
echo >&2
go run ./scripts/benchtable <"$out"
