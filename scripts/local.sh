#!/usr/bin/env bash
# `make local`: start the emulator (127.0.0.1:${CEFORGE_EMULATOR_PORT:-4566}),
# then serve the whole API on 127.0.0.1:${CEFORGE_API_PORT:-8080} with the event
# consumers and the reconciler running. Ctrl-C stops both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CEFORGE_EMULATOR_PORT=${CEFORGE_EMULATOR_PORT:-4566}
eval "$(scripts/tools.sh)"
started_here=0
if ! scripts/emulator.sh status >/dev/null 2>&1; then
	scripts/emulator.sh start
	started_here=1
fi
cleanup() {
	if [ "$started_here" = 1 ]; then scripts/emulator.sh stop; fi
}
trap cleanup EXIT
go build -o .local/localserver ./scripts/localserver
export CEFORGE_AWS_ENDPOINT="http://127.0.0.1:${CEFORGE_EMULATOR_PORT}"
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
export CEFORGE_TABLE=${CEFORGE_TABLE:-ceforge}
# Run in the foreground; Ctrl-C reaches it, it shuts down, then the trap stops the emulator.
.local/localserver || true
