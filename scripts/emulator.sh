#!/usr/bin/env bash
# Local AWS emulator (moto server) for ceforge.
#   scripts/emulator.sh ensure   print the path of a moto_server 5.2.x, installing
#                                moto[server]==5.2.1 into ./.venv when none is found
#   scripts/emulator.sh start    start one on 127.0.0.1:$CEFORGE_EMULATOR_PORT (default 4566)
#                                unless it already answers; record its pid in .local/
#   scripts/emulator.sh stop     stop the one we started (by recorded pid)
#   scripts/emulator.sh reset    wipe its state (and keep Batch in no-Docker mode)
#   scripts/emulator.sh status   say whether it answers
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${CEFORGE_EMULATOR_PORT:-4566}
url="http://127.0.0.1:${port}"
state="$root/.local"
pidfile="$state/emulator-${port}.pid"
logfile="$state/emulator-${port}.log"
MOTO_VERSION=5.2.1

moto_ok() { # $1 = python interpreter; true when it has moto 5.2.x with the server extras
	"$1" - <<'PY' >/dev/null 2>&1
import moto, flask, flask_cors  # server extras
assert moto.__version__.startswith("5.2."), moto.__version__
PY
}

ensure() {
	if [ -n "${CEFORGE_MOTO_SERVER:-}" ] && [ -x "${CEFORGE_MOTO_SERVER}" ]; then
		echo "$CEFORGE_MOTO_SERVER"; return
	fi
	if [ -x "$root/.venv/bin/moto_server" ] && moto_ok "$root/.venv/bin/python"; then
		echo "$root/.venv/bin/moto_server"; return
	fi
	if command -v moto_server >/dev/null 2>&1; then
		# The interpreter behind the moto_server on PATH (pyenv shims resolve via `pyenv which`).
		local py
		py=$( (pyenv which python3 2>/dev/null) || command -v python3 || true)
		if [ -n "$py" ] && moto_ok "$py"; then
			command -v moto_server; return
		fi
	fi
	echo "installing moto[server]==${MOTO_VERSION} into $root/.venv" >&2
	python3 -m venv "$root/.venv" >&2
	"$root/.venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==${MOTO_VERSION}" >&2
	echo "$root/.venv/bin/moto_server"
}

answers() { curl -fsS -o /dev/null --max-time 2 "$url/moto-api/config" 2>/dev/null; }

configure() { curl -fsS -o /dev/null -X POST "$url/moto-api/config" -H 'Content-Type: application/json' -d '{"batch":{"use_docker":false}}'; }

start() {
	mkdir -p "$state"
	if answers; then configure; echo "emulator already answering on $url" >&2; return; fi
	local bin; bin=$(ensure)
	MOTO_IAM_LOAD_MANAGED_POLICIES=true AWS_DEFAULT_REGION=${AWS_REGION:-us-east-1} \
		nohup "$bin" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 &
	echo $! >"$pidfile"
	for _ in $(seq 1 300); do
		if answers; then configure; echo "emulator started on $url (pid $(cat "$pidfile"), log $logfile)" >&2; return; fi
		if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo "emulator exited; see $logfile" >&2; exit 1; fi
		sleep 0.1
	done
	echo "emulator did not answer on $url within 30s; see $logfile" >&2; stop; exit 1
}

stop() {
	[ -f "$pidfile" ] || { echo "no emulator started by us on port $port" >&2; return 0; }
	local pid; pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
	echo "emulator on port $port stopped" >&2
}

case "${1:-}" in
ensure) ensure ;;
start) start ;;
stop) stop ;;
reset) curl -fsS -o /dev/null -X POST "$url/moto-api/reset" && configure ;;
status) if answers; then echo "answering on $url"; else echo "not answering on $url"; exit 1; fi ;;
*) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
