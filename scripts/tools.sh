#!/usr/bin/env bash
# Makes sure the Python tools the tests call are present: moto_server (via
# emulator.sh), openapi-spec-validator and cfn-lint. Uses what is on PATH;
# installs what is missing into the project-local ./.venv (pinned versions).
# Prints "export ..." lines for the Makefile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
moto=$("$root/scripts/emulator.sh" ensure)
need=()
command -v openapi-spec-validator >/dev/null 2>&1 || [ -x "$root/.venv/bin/openapi-spec-validator" ] || need+=("openapi-spec-validator==0.9.0")
command -v cfn-lint >/dev/null 2>&1 || [ -x "$root/.venv/bin/cfn-lint" ] || need+=("cfn-lint==1.51.0")
if [ ${#need[@]} -gt 0 ]; then
	[ -x "$root/.venv/bin/pip" ] || python3 -m venv "$root/.venv" >&2
	echo "installing ${need[*]} into $root/.venv" >&2
	"$root/.venv/bin/pip" install --quiet --disable-pip-version-check "${need[@]}" >&2
fi
echo "export CEFORGE_MOTO_SERVER=$moto"
echo "export PATH=$PATH:$root/.venv/bin"
