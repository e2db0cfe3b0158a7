#!/usr/bin/env bash
# scripts/cdk.sh: synthesize, lint and deploy the ceforge CDK app (infra/).
#
#   scripts/cdk.sh synth [-c key=value ...]   build the functions, run the Go CDK app
#                                             into cdk.out (no CDK CLI, no AWS calls)
#   scripts/cdk.sh lint                       cfn-lint on the templates in cdk.out
#   scripts/cdk.sh deploy [cdk deploy args]   install the pinned CDK CLI into .local/cdk,
#                                             build the functions, cdk deploy (the control
#                                             plane stack unless another is named)
#   scripts/cdk.sh cdk <args>                 any other CDK CLI command (diff, destroy,
#                                             bootstrap, synth, context, ...)
#   scripts/cdk.sh cli                        install the pinned CDK CLI only
#   scripts/cdk.sh lint-deps                  install cfn-lint into .venv if missing
#
# Configuration is CDK context: cdk.json "context" (the documented defaults,
# see infra/README.md) overridden by -c key=value.
#
# Environment:
#   CEFORGE_SKIP_BUILD=1   do not run `make build` first (build/<fn>/bootstrap must exist);
#                          implied when run by make, whose synth/deploy targets build first
#   CDK_CLI_VERSION        CDK CLI version to install (default: the pinned one below)
set -euo pipefail

CDK_CLI_VERSION="${CDK_CLI_VERSION:-2.1031.0}" # CLI for aws-cdk-lib 2.220 (Go module awscdk/v2 v2.220.0)
CFN_LINT_SPEC="${CFN_LINT_SPEC:-cfn-lint==1.51.0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CDK_DIR="$ROOT/.local/cdk"
CDK_BIN="$CDK_DIR/node_modules/.bin/cdk"
OUT="$ROOT/cdk.out"

# The CLI must not phone home: no notices, no version check, no telemetry.
export CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true
# jsii prints a full-screen end-of-life banner on Node 18 and 20 at every
# synth; synthesis works, and the README asks for Node 22 or later. Set the
# variable to "" to see the banner.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="${JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION-18,20}"

die() { echo "cdk.sh: $*" >&2; exit 1; }

build() {
  # Under make (`make synth`, `make deploy`) the build target already ran.
  if [[ "${CEFORGE_SKIP_BUILD:-}" == 1 || -n "${MAKELEVEL:-}" ]]; then return; fi
  [[ -f Makefile ]] || die "no Makefile: build the functions into build/<name>/bootstrap, or set CEFORGE_SKIP_BUILD=1"
  make build
}

# context_json merges cdk.json's context with -c key=value arguments (the
# same precedence as the CDK CLI) into the JSON the app reads from
# CDK_CONTEXT_JSON.
context_json() {
  node - "$@" <<'EOF'
const fs = require('fs');
const ctx = Object.assign({}, JSON.parse(fs.readFileSync('cdk.json', 'utf8')).context || {});
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  let kv = args[i];
  if (kv === '-c' || kv === '--context') kv = args[++i];
  else if (kv.startsWith('--context=')) kv = kv.slice('--context='.length);
  else { console.error(`cdk.sh synth: unexpected argument ${kv} (use -c key=value)`); process.exit(2); }
  const eq = (kv || '').indexOf('=');
  if (eq <= 0) { console.error(`cdk.sh synth: bad context ${kv} (use key=value)`); process.exit(2); }
  ctx[kv.slice(0, eq)] = kv.slice(eq + 1);
}
process.stdout.write(JSON.stringify(ctx));
EOF
}

synth() {
  command -v node >/dev/null || die "node is required (jsii runs the CDK in node)"
  local ctx
  ctx="$(context_json "$@")"
  build
  rm -rf "$OUT"
  local start
  start=$(date +%s%N)
  CDK_OUTDIR="$OUT" CDK_CONTEXT_JSON="$ctx" go run ./infra
  echo "cdk.sh: synth took $((($(date +%s%N) - start) / 1000000)) ms (compile + synth); templates:"
  ls "$OUT"/*.template.json
}

cfn_lint_bin() {
  if command -v cfn-lint >/dev/null; then command -v cfn-lint; return; fi
  if [[ -x "$ROOT/.venv/bin/cfn-lint" ]]; then echo "$ROOT/.venv/bin/cfn-lint"; return; fi
  return 1
}

lint_deps() {
  if cfn_lint_bin >/dev/null; then return; fi
  command -v python3 >/dev/null || die "python3 is required to install cfn-lint"
  [[ -d "$ROOT/.venv" ]] || python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install --quiet "$CFN_LINT_SPEC"
}

lint() {
  lint_deps
  compgen -G "$OUT/*.template.json" >/dev/null || die "no templates in $OUT: run scripts/cdk.sh synth first"
  "$(cfn_lint_bin)" "$OUT"/*.template.json
}

cli() {
  if [[ -x "$CDK_BIN" ]] && [[ "$("$CDK_BIN" --version 2>/dev/null | awk '{print $1}')" == "$CDK_CLI_VERSION" ]]; then
    return
  fi
  command -v npm >/dev/null || die "npm is required to install the CDK CLI"
  mkdir -p "$CDK_DIR"
  [[ -f "$CDK_DIR/package.json" ]] || echo '{"name":"ceforge-cdk-cli","private":true}' >"$CDK_DIR/package.json"
  npm install --prefix "$CDK_DIR" --save-exact --no-audit --no-fund --loglevel=error "aws-cdk@$CDK_CLI_VERSION"
}

cdk() {
  cli
  "$CDK_BIN" --no-notices "$@"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  synth) synth "$@" ;;
  lint) lint ;;
  lint-deps) lint_deps ;;
  cli) cli ;;
  deploy)
    cli
    build
    # The app holds two stacks: the control plane and the member stack
    # (deployed in member accounts from its template, see README "Member
    # accounts"). Without a stack named, deploy the control plane.
    named=0
    for a in "$@"; do [[ "$a" != -* && "$a" != *=* ]] && named=1; done
    if [[ $named == 0 ]]; then
      set -- "$(node -e 'const c=(JSON.parse(require("fs").readFileSync("cdk.json","utf8")).context||{}); process.stdout.write(String(c.stackName||"ceforge"))')" "$@"
    fi
    cdk deploy "$@"
    ;;
  cdk) cdk "$@" ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    [[ -z "$cmd" || "$cmd" == -h || "$cmd" == --help || "$cmd" == help ]] || exit 2
    ;;
esac
