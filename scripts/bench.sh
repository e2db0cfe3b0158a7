#!/usr/bin/env bash
# `make bench`: Go benchmarks (micro, default bench time) and scenario
# benchmarks (BenchmarkScenario*, run once each against the emulator), the
# IAM-checked tier's figures (scripts/iamreport), then one table of every
# figure. Raw output is kept in .local/bench.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .local
out=.local/bench.txt
: >"$out"
# Function start-up first and alone: a cold start is one process on an idle
# vCPU, and `go test ./...` runs two packages at once, so beside the other
# scenarios this would time their load (it read 55 ms that way, 19 ms alone).
echo "running function size and start-up benchmarks (alone)…" >&2
go test -run '^$' -bench '^BenchmarkScenarioBootstrap' -benchtime=1x ./internal/runtimeapi 2>&1 | tee -a "$out" | grep -E '^(Benchmark|FAIL|panic)' >&2 || true
others=$(go list ./... | grep -v '/internal/runtimeapi$')
echo "running micro benchmarks…" >&2
go test -run '^$' -bench '^Benchmark[^S]|^BenchmarkS[^c]' -benchmem ./... 2>&1 | tee -a "$out" | grep -E '^(Benchmark|FAIL|panic)' >&2 || true
echo "running scenario benchmarks…" >&2
# The timeout is per package: internal/trace ingests a 100,000-task run
# through the emulator (about 35 minutes on a loaded 2-core machine).
go test -run '^$' -bench '^BenchmarkScenario' -benchtime=1x -timeout 75m $others 2>&1 | tee -a "$out" | grep -E '^(Benchmark|FAIL|panic)' >&2 || true
# The IAM-checked tier's figures come from the tests (make test writes the
# report; reused when the tree has not changed since, else the tests run).
report=$PWD/.local/iam-report
stamp=$(scripts/iamsim.sh stamp)
if [ "$(cat "$report/stamp" 2>/dev/null)" != "$stamp" ]; then
	echo "running the tests for the IAM-checked tier's figures (no current make test report)…" >&2
	rm -rf "$report"
	eval "$(scripts/tools.sh)"
	CEFORGE_IAM_REPORT=$report go test -count=1 -timeout 30m ./... >.local/iam-tests.txt 2>&1 || echo "tests failed: .local/iam-tests.txt" >&2
	echo "$stamp" >"$report/stamp"
fi
go run ./scripts/iamreport -dir "$report" -bench | tee -a "$out" | grep -E '^Benchmark' >&2 || true
echo >&2
go run ./scripts/benchtable <"$out"
