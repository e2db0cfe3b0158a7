#!/usr/bin/env bash
# Makes sure the tools the tests call are present: moto_server (via
# emulator.sh), openapi-spec-validator, cfn-lint and botocore (the
# independent SigV4 signer of the signing tests), installed when missing into
# the project-local ./.venv (pinned versions); and tmux (the CLI's terminal
# test), installed from Debian when missing and apt-get can; and the IAM
# evaluators of the IAM-checked tier (npm, pinned, into .local/iamsim by
# scripts/iamsim.sh). Prints "export ..." lines for the Makefile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
moto=$("$root/scripts/emulator.sh" ensure)
need=()
command -v openapi-spec-validator >/dev/null 2>&1 || [ -x "$root/.venv/bin/openapi-spec-validator" ] || need+=("openapi-spec-validator==0.9.0")
command -v cfn-lint >/dev/null 2>&1 || [ -x "$root/.venv/bin/cfn-lint" ] || need+=("cfn-lint==1.51.0")
python=python3
if ! python3 -c 'import botocore' >/dev/null 2>&1; then
	if [ -x "$root/.venv/bin/python" ] && "$root/.venv/bin/python" -c 'import botocore' >/dev/null 2>&1; then
		python="$root/.venv/bin/python"
	else
		need+=("botocore==1.43.11")
		python="$root/.venv/bin/python"
	fi
fi
if ! command -v tmux >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	echo "installing tmux from Debian (for the CLI's terminal test)" >&2
	{ apt-get install -y -q tmux || { apt-get update -q && apt-get install -y -q tmux; }; } >/dev/null 2>&1 || echo "could not install tmux" >&2
fi
if [ ${#need[@]} -gt 0 ]; then
	[ -x "$root/.venv/bin/pip" ] || python3 -m venv "$root/.venv" >&2
	echo "installing ${need[*]} into $root/.venv" >&2
	"$root/.venv/bin/pip" install --quiet --disable-pip-version-check "${need[@]}" >&2
fi
# The IAM-checked tier's evaluators (npm, pinned, project-local).
"$root/scripts/iamsim.sh" ensure >/dev/null
echo "export CEFORGE_MOTO_SERVER=$moto"
echo "export CEFORGE_PYTHON=$python"
echo "export PATH=$PATH:$root/.venv/bin"
