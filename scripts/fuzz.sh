#!/usr/bin/env bash
# Runs every Go fuzz target in the module for the given time each (default 5s).
# `make test` runs them briefly; `make fuzz` longer.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-5s}
found=0
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	echo "fuzz $pkg $name ($fuzztime)"
	if ! out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
		echo "$out"
		echo "fuzz: $pkg $name FAILED"
		exit 1
	fi
	found=$((found + 1))
done < <(git ls-files '*_test.go' | xargs grep -oH '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func /:/' | sort -u)
echo "fuzz: $found targets passed"
