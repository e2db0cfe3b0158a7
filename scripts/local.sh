#!/usr/bin/env bash
# `make local`: start the emulator (127.0.0.1:${CEFORGE_EMULATOR_PORT:-4566})
# while the local server builds, then serve the whole API on
# 127.0.0.1:${CEFORGE_API_PORT:-8080} (log follow on ${CEFORGE_LOGS_PORT:-8081})
# with the event consumers, the reconciler and the head simulator running.
# It says what it does at each step. Ctrl-C stops both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CEFORGE_LOCAL_STARTED_MS=${CEFORGE_LOCAL_STARTED_MS:-$(date +%s%3N)}
export CEFORGE_EMULATOR_PORT=${CEFORGE_EMULATOR_PORT:-4566}
say() { echo "make local: $*" >&2; }
say "checking the Python tools (moto, installed into .venv when missing)…"
eval "$(scripts/tools.sh)"
mkdir -p .local
started_here=0
emulator_pid=
if ! scripts/emulator.sh status >/dev/null 2>&1; then
	say "starting the AWS emulator (moto) on 127.0.0.1:${CEFORGE_EMULATOR_PORT}…"
	scripts/emulator.sh start 2>.local/emulator-start.log &
	emulator_pid=$!
	started_here=1
else
	say "using the emulator already answering on 127.0.0.1:${CEFORGE_EMULATOR_PORT}"
fi
cleanup() {
	if [ "$started_here" = 1 ]; then scripts/emulator.sh stop; fi
}
trap cleanup EXIT
if [ -x .local/localserver ]; then
	say "building the local server (warm cache: seconds)…"
else
	say "building the local server: the first build compiles the AWS SDK and takes a few minutes (later ones take seconds)…"
fi
build_start=$(date +%s)
go build -o .local/localserver ./scripts/localserver
say "built in $(($(date +%s) - build_start))s"
if [ -n "$emulator_pid" ]; then
	if ! wait "$emulator_pid"; then cat .local/emulator-start.log >&2; exit 1; fi
	cat .local/emulator-start.log >&2
fi
export CEFORGE_AWS_ENDPOINT="http://127.0.0.1:${CEFORGE_EMULATOR_PORT}"
export AWS_REGION=${AWS_REGION:-us-east-1}
# The server's own calls go to the emulator, which takes any key.
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
unset AWS_SESSION_TOKEN AWS_PROFILE
export CEFORGE_TABLE=${CEFORGE_TABLE:-ceforge}
# Run in the foreground; Ctrl-C reaches it, it shuts down, then the trap stops the emulator.
.local/localserver || true
