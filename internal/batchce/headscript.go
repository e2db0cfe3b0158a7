package batchce

import "github.com/ceforge/ceforge/internal/secret/secretsh"

// HeadScript is the command of every head job (bash -c HeadScript). It is
// constant: every run-specific value arrives in the job's environment
// (base64 for free text), so nothing a user types is ever interpreted by
// this shell, and the same script serves every run.
//
// What it does, in order:
//   - decodes the Nextflow config, params and scripts into its launch dir;
//   - reads the run's pipeline secrets with the job's own role into
//     Nextflow's secrets file (and a Seqera token into TOWER_ACCESS_TOKEN):
//     the job definition and DescribeJobs hold their names only;
//   - runs the pre-run script; when that fails Nextflow does not run, but
//     the post-run script and the log upload still do (as on AWS Cloud);
//   - runs Nextflow in the background and waits for it, so that SIGTERM
//     (AWS Batch's TerminateJob stops the container with SIGTERM, then
//     SIGKILL about 30 s later) reaches the trap at once: it forwards the
//     signal to Nextflow (which cancels its tasks and writes its log) and
//     waits for it to end;
//   - on exit, whatever the outcome, runs the post-run script (with
//     CEFORGE_EXIT_CODE) and uploads nextflow.log and the trace, report and
//     timeline files it finds to <workDir>/.ceforge/runs/<run-id>/ — the
//     same place the AWS Cloud head uses, where GET /runs/{id}/logs/download
//     finds it. A cancelled run uploads first, then runs the post-run
//     script, so the log is safe before the SIGKILL deadline.
//
// Sections are shell functions so that features can add to one step
// without touching the others (ceforge_nextflow_args builds Nextflow's
// arguments).
const HeadScript = `set -uo pipefail
CEFORGE_DIR=/tmp/ceforge
CEFORGE_DEST="${CEFORGE_WORK_DIR%/}/.ceforge/runs/${CEFORGE_RUN_ID}"
CEFORGE_RC=1
CEFORGE_CANCELLED=0
CEFORGE_NF_PID=
mkdir -p "$CEFORGE_DIR" && cd "$CEFORGE_DIR" || exit 1

# ceforge_copy SRC DEST: to S3 with the AWS CLI, or with Nextflow's own S3
# client when the image has no CLI; to a shared file system with cp.
ceforge_copy() {
  case "$2" in
  s3://*)
    if command -v aws >/dev/null 2>&1; then
      aws s3 cp --only-show-errors --region "$CEFORGE_REGION" "$1" "$2"
    else
      AWS_REGION="$CEFORGE_REGION" nextflow -q -log "$CEFORGE_DIR/copy.log" fs cp "$1" "$2"
    fi ;;
  *) mkdir -p "$(dirname "$2")" && cp "$1" "$2" ;;
  esac
}

ceforge_upload() {
  local f
  # A snapshot: a later nextflow command would rotate .nextflow.log.
  [ -f .nextflow.log ] && cp .nextflow.log nextflow.log
  for f in nextflow.log trace*.txt report*.html timeline*.html; do
    [ -f "$f" ] || continue
    if ceforge_copy "$f" "$CEFORGE_DEST/$f"; then
      echo "ceforge: uploaded $f to $CEFORGE_DEST/$f"
    else
      echo "ceforge: could not upload $f to $CEFORGE_DEST/$f"
    fi
  done
}

ceforge_post_run() {
  [ -n "${CEFORGE_POST_RUN:-}" ] || return 0
  printf '%s' "$CEFORGE_POST_RUN" | base64 -d > post-run.sh
  CEFORGE_EXIT_CODE="$CEFORGE_RC" bash post-run.sh || echo "ceforge: post-run script failed with exit code $?"
}

ceforge_finish() {
  trap - EXIT TERM INT
  if [ "$CEFORGE_CANCELLED" = 1 ]; then
    ceforge_upload
    ceforge_post_run
  else
    ceforge_post_run
    ceforge_upload
  fi
  echo "ceforge: run ${CEFORGE_RUN_ID} ended with exit code ${CEFORGE_RC}"
  exit "$CEFORGE_RC"
}

ceforge_stop() {
  echo "ceforge: stop requested (SIGTERM)"
  CEFORGE_CANCELLED=1
  CEFORGE_RC=143
  [ -n "$CEFORGE_NF_PID" ] && kill -TERM "$CEFORGE_NF_PID" 2>/dev/null
}
trap ceforge_finish EXIT
trap ceforge_stop TERM INT

# ceforge_secret NAME prints a secret's value, read with the job's own
# role: with the AWS CLI, or else with curl signing the call itself from
# the task's credentials (ECS container credentials endpoint).
ceforge_secret() {
  if command -v aws >/dev/null 2>&1; then
    aws secretsmanager get-secret-value --region "$CEFORGE_REGION" --secret-id "$1" --query SecretString --output text
    return
  fi
  [ -n "${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-}" ] || return 1
  local creds ak sk st
  creds=$(curl -fsS --max-time 10 "http://169.254.170.2${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI}") || return 1
  ak=$(printf '%s' "$creds" | sed -n 's/.*"AccessKeyId" *: *"\([^"]*\)".*/\1/p')
  sk=$(printf '%s' "$creds" | sed -n 's/.*"SecretAccessKey" *: *"\([^"]*\)".*/\1/p')
  st=$(printf '%s' "$creds" | sed -n 's/.*"Token" *: *"\([^"]*\)".*/\1/p')
  [ -n "$ak" ] && [ -n "$sk" ] || return 1
  curl -fsS --max-time 10 --aws-sigv4 "aws:amz:${CEFORGE_REGION}:secretsmanager" --user "$ak:$sk" \
    -H "x-amz-security-token: $st" -H 'X-Amz-Target: secretsmanager.GetSecretValue' -H 'Content-Type: application/x-amz-json-1.1' \
    --data "{\"SecretId\":\"$1\"}" "https://secretsmanager.${CEFORGE_REGION}.amazonaws.com/" |
    sed -n 's/.*"SecretString" *: *"\([^"]*\)".*/\1/p'
}

# ceforge_trace: Nextflow reports progress to ceforge (-with-tower). The
# run's token is read from its secret into this shell's environment only
# (never the job definition or DescribeJobs); without it the run goes on
# without live progress.
ceforge_trace() {
  [ -n "${CEFORGE_TRACE_URL:-}" ] || return 0
  if TOWER_ACCESS_TOKEN=$(ceforge_secret "$CEFORGE_TRACE_SECRET") && [ -n "$TOWER_ACCESS_TOKEN" ]; then
    export TOWER_ACCESS_TOKEN TOWER_WORKFLOW_ID="$CEFORGE_RUN_ID"
    CEFORGE_ARGS+=(-with-tower "$CEFORGE_TRACE_URL")
  else
    unset TOWER_ACCESS_TOKEN
    echo "ceforge: could not read the run's progress token; running without live progress"
  fi
  return 0
}

# ceforge_secret_b64 ID: a pipeline secret's value (SecretBinary, base64),
# read with the job's own role: with the AWS CLI, or else with curl signing
# the call from the task's container credentials (the keys reach curl on
# its standard input, never its command line).
ceforge_secret_b64() {
  if command -v aws >/dev/null 2>&1; then
    aws secretsmanager get-secret-value --region "$CEFORGE_REGION" --secret-id "$1" --query SecretBinary --output text
    return
  fi
  if [ -z "${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-}" ]; then
    echo "ceforge: no AWS CLI in the head image and no container credentials to read secret $1" >&2
    return 1
  fi
  local creds ak sk st
  creds=$(curl -fsS --max-time 10 "http://169.254.170.2${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI}") || return 1
  ak=$(printf '%s' "$creds" | sed -n 's/.*"AccessKeyId" *: *"\([^"]*\)".*/\1/p')
  sk=$(printf '%s' "$creds" | sed -n 's/.*"SecretAccessKey" *: *"\([^"]*\)".*/\1/p')
  st=$(printf '%s' "$creds" | sed -n 's/.*"Token" *: *"\([^"]*\)".*/\1/p')
  [ -n "$ak" ] && [ -n "$sk" ] || return 1
  printf 'user = "%s:%s"\nheader = "x-amz-security-token: %s"\n' "$ak" "$sk" "$st" |
    curl -fsS --max-time 10 -K - --aws-sigv4 "aws:amz:${CEFORGE_REGION}:secretsmanager" \
      -H 'X-Amz-Target: secretsmanager.GetSecretValue' -H 'Content-Type: application/x-amz-json-1.1' \
      --data "{\"SecretId\":\"$1\"}" "https://secretsmanager.${CEFORGE_REGION}.amazonaws.com/" |
    sed -n 's/.*"SecretBinary" *: *"\([^"]*\)".*/\1/p' | sed 's#\\/#/#g'
}
` + secretsh.Functions + `
ceforge_nextflow_args() {
  CEFORGE_ARGS=(run "$CEFORGE_PIPELINE" -c ceforge.config -w "$CEFORGE_WORK_DIR" -name "$CEFORGE_RUN_NAME")
  [ -n "${CEFORGE_REVISION:-}" ] && CEFORGE_ARGS+=(-r "$CEFORGE_REVISION")
  [ -n "${CEFORGE_PROFILES:-}" ] && CEFORGE_ARGS+=(-profile "$CEFORGE_PROFILES")
  [ -n "${CEFORGE_PARAMS:-}" ] && CEFORGE_ARGS+=(-params-file params.yml)
  [ -n "${CEFORGE_RESUME:-}" ] && CEFORGE_ARGS+=(-resume "$CEFORGE_RESUME")
  ceforge_trace
  return 0
}

printf '%s' "$CEFORGE_NF_CONFIG" | base64 -d > ceforge.config
[ -n "${CEFORGE_PARAMS:-}" ] && printf '%s' "$CEFORGE_PARAMS" | base64 -d > params.yml
if [ -n "${CEFORGE_PRE_RUN:-}" ]; then
  printf '%s' "$CEFORGE_PRE_RUN" | base64 -d > pre-run.sh
  bash pre-run.sh
  CEFORGE_RC=$?
  if [ "$CEFORGE_RC" -ne 0 ]; then
    echo "ceforge: pre-run script failed with exit code ${CEFORGE_RC}; Nextflow does not run"
    exit "$CEFORGE_RC"
  fi
fi
[ "$CEFORGE_CANCELLED" = 1 ] && exit 143
if ! ceforge_secrets || ! ceforge_seqera_token; then
  CEFORGE_RC=1
  exit 1
fi
ceforge_nextflow_args
nextflow "${CEFORGE_ARGS[@]}" &
CEFORGE_NF_PID=$!
wait "$CEFORGE_NF_PID"
CEFORGE_RC=$?
# A signal interrupts wait: keep waiting until Nextflow has ended.
while kill -0 "$CEFORGE_NF_PID" 2>/dev/null; do
  wait "$CEFORGE_NF_PID"
  CEFORGE_RC=$?
done
exit "$CEFORGE_RC"
`
