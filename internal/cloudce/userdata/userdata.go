// Package userdata renders the shell script an EC2 head instance runs at
// boot: ship the console log to CloudWatch, arm a watchdog, run the pre-run
// script, Nextflow (or a Studio container) in Docker, the post-run script,
// upload nextflow.log and an exit-status file to the work dir, shut down.
//
// Every user-supplied value enters the script once, as a single-quoted
// assignment in the header (CEFORGE_*=' … '); the body only ever expands
// those variables inside double quotes. A value therefore cannot become code
// whatever it contains (the fuzz test parses the script to prove it).
package userdata

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ceforge/ceforge/internal/secret/secretsh"
)

// MaxBytes is EC2's user-data limit (before base64 encoding).
const MaxBytes = 16 << 10

// DefaultNextflowImage runs Nextflow on the head instance.
const DefaultNextflowImage = "nextflow/nextflow:24.10.5"

// DefaultMaxRunHours is the watchdog's default limit.
const DefaultMaxRunHours = 168

// Paths on the instance and in the work dir.
const (
	// RunDir holds the run's files on the instance.
	RunDir = "/var/lib/ceforge"
	// ConsoleLog is the file the CloudWatch agent ships.
	ConsoleLog = "/var/log/ceforge/console.log"
	// ExitStatusFile is the name of the file that carries the exit code.
	ExitStatusFile = "exit-status"
	// NextflowLogFile is the uploaded Nextflow log.
	NextflowLogFile = "nextflow.log"
)

// ErrTooLarge reports a script over MaxBytes even when compressed.
var ErrTooLarge = errors.New("user-data exceeds EC2's 16 KB limit even when compressed")

// EnvVar is an environment variable exported to the head (and passed to
// the Nextflow or Studio container).
type EnvVar struct {
	Name  string
	Value string
}

// Spec is everything the script needs. Values are trusted to be validated
// for shape (names, ids) but never for content: scripts and configs are
// arbitrary text.
type Spec struct {
	RunID       string
	Region      string
	LogGroup    string // CloudWatch log group; the stream is RunID
	WorkDir     string // s3://bucket/prefix, no trailing slash
	MaxRunHours int

	// Pipeline runs.
	Pipeline       string
	Revision       string
	ConfigProfiles []string
	ParamsText     string
	ConfigText     string // CE nextflowConfig + run configText
	NextflowImage  string

	// Studio runs (Pipeline empty).
	StudioImage string
	StudioPort  int

	PreRunScript  string
	PostRunScript string
	Env           []EnvVar

	// TraceURL and TraceSecret make Nextflow report progress to ceforge
	// (-with-tower); the head reads the token from the secret at start.
	TraceURL    string
	TraceSecret string
	// Resume is the Nextflow session a relaunched run resumes.
	Resume string
	// Secrets are the run's pipeline secrets (names only: the head reads
	// the values with the instance's role), SecretPrefix their Secrets
	// Manager name prefix; SeqeraTokenSecret the secret of a Seqera token
	// for Wave and Fusion; Registries the private registries the host logs
	// into with passwords kept as secrets.
	Secrets           []string
	SecretPrefix      string
	SeqeraTokenSecret string
	Registries        []Registry
}

// Registry is a private registry login whose password is a pipeline secret.
type Registry struct {
	Host, Username, PasswordSecret string
}

// ExitStatusKey returns the S3 key prefix under the work dir where a run's
// files are uploaded: <workDirKey>/.ceforge/runs/<runID>/.
func ExitStatusKey(workDirKey, runID string) string {
	return joinKey(workDirKey, ".ceforge/runs/"+runID+"/"+ExitStatusFile)
}

func joinKey(prefix, rest string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return rest
	}
	return prefix + "/" + rest
}

// Quote returns s as one shell word: inside single quotes nothing is
// special, and an embedded quote is closed, written as "'" and reopened.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// Render returns the script as text.
func Render(s Spec) (string, error) {
	if s.RunID == "" || s.WorkDir == "" || s.LogGroup == "" {
		return "", errors.New("userdata: RunID, WorkDir and LogGroup are required")
	}
	if s.MaxRunHours <= 0 {
		s.MaxRunHours = DefaultMaxRunHours
	}
	if s.NextflowImage == "" {
		s.NextflowImage = DefaultNextflowImage
	}
	var b strings.Builder
	b.Grow(4096 + len(s.ConfigText) + len(s.ParamsText) + len(s.PreRunScript) + len(s.PostRunScript))
	b.WriteString("#!/bin/bash\n# ceforge head instance. Generated: every value below is single-quoted.\nset -uo pipefail\n\n")

	assign := func(name, value string) {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(Quote(value))
		b.WriteByte('\n')
	}
	assign("CEFORGE_RUN_ID", s.RunID)
	assign("CEFORGE_REGION", s.Region)
	assign("CEFORGE_LOG_GROUP", s.LogGroup)
	assign("CEFORGE_WORK_DIR", strings.TrimRight(s.WorkDir, "/"))
	assign("CEFORGE_MAX_RUN_MINUTES", strconv.Itoa(s.MaxRunHours*60))
	assign("CEFORGE_CW_CONFIG", cloudWatchConfig(s.LogGroup, s.RunID))
	assign("CEFORGE_PRE_RUN", s.PreRunScript)
	assign("CEFORGE_POST_RUN", s.PostRunScript)
	if s.Pipeline != "" {
		assign("CEFORGE_NXF_IMAGE", s.NextflowImage)
		assign("CEFORGE_PIPELINE", s.Pipeline)
		assign("CEFORGE_REVISION", s.Revision)
		assign("CEFORGE_PROFILES", strings.Join(s.ConfigProfiles, ","))
		assign("CEFORGE_PARAMS", s.ParamsText)
		assign("CEFORGE_PARAMS_FILE", paramsFile(s.ParamsText))
		assign("CEFORGE_CONFIG", s.ConfigText)
		assign("CEFORGE_RESUME", s.Resume)
		assign("CEFORGE_TRACE_URL", s.TraceURL)
		assign("CEFORGE_TRACE_SECRET", s.TraceSecret)
	} else {
		assign("CEFORGE_STUDIO_IMAGE", s.StudioImage)
		assign("CEFORGE_STUDIO_PORT", strconv.Itoa(s.StudioPort))
	}
	assign("CEFORGE_SECRET_PREFIX", s.SecretPrefix)
	assign("CEFORGE_SECRETS", strings.Join(s.Secrets, " "))
	assign("CEFORGE_SEQERA_TOKEN_SECRET", s.SeqeraTokenSecret)
	var regs strings.Builder
	for _, r := range s.Registries {
		// Validated shapes: host names, user names, secret names (no spaces).
		regs.WriteString(r.Host + " " + r.Username + " " + r.PasswordSecret + "\n")
	}
	assign("CEFORGE_REGISTRIES", regs.String())
	env := append([]EnvVar(nil), s.Env...)
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	var envFlags strings.Builder
	for _, e := range env {
		// Names are validated identifiers ([A-Za-z_][A-Za-z0-9_]*).
		b.WriteString("export ")
		assign(e.Name, e.Value)
		envFlags.WriteString(" -e " + e.Name)
	}
	b.WriteString(prologue)
	if s.Pipeline != "" {
		b.WriteString(strings.ReplaceAll(pipelineBody, "@ENV_FLAGS@", envFlags.String()))
	} else {
		b.WriteString(strings.ReplaceAll(studioBody, "@ENV_FLAGS@", envFlags.String()))
	}
	return b.String(), nil
}

// Build renders the script and fits it into EC2's limit: as is when small
// enough, else gzip-compressed (cloud-init detects and inflates it), else
// ErrTooLarge.
func Build(s Spec) ([]byte, error) {
	text, err := Render(s)
	if err != nil {
		return nil, err
	}
	if len(text) <= MaxBytes {
		return []byte(text), nil
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write([]byte(text)); err != nil {
		return nil, fmt.Errorf("compress user-data: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress user-data: %w", err)
	}
	if buf.Len() > MaxBytes {
		return nil, fmt.Errorf("%w (%d bytes, %d compressed)", ErrTooLarge, len(text), buf.Len())
	}
	return buf.Bytes(), nil
}

// paramsFile picks the params file name: Nextflow reads JSON or YAML by extension.
func paramsFile(params string) string {
	t := strings.TrimSpace(params)
	if t == "" {
		return ""
	}
	if strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
		return "params.json"
	}
	return "params.yaml"
}

// cloudWatchConfig is the agent configuration shipping the console log to
// the run's stream (built by hand: a map through encoding/json is most of
// the render time).
func cloudWatchConfig(group, stream string) string {
	str := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	return `{"agent":{"run_as_user":"root"},"logs":{"logs_collected":{"files":{"collect_list":[{"file_path":` + str(ConsoleLog) +
		`,"log_group_name":` + str(group) + `,"log_stream_name":` + str(stream) + `,"retention_in_days":-1}]}}}}`
}

// prologue: console log, CloudWatch agent, watchdog, S3 helper and the
// exit trap that uploads results and shuts the instance down whatever happens.
const prologue = `
CEFORGE_DIR=` + RunDir + `
CEFORGE_DEST="${CEFORGE_WORK_DIR}/.ceforge/runs/${CEFORGE_RUN_ID}"
CEFORGE_RC=1
mkdir -p "$CEFORGE_DIR" /var/log/ceforge
exec > >(tee -a ` + ConsoleLog + `) 2>&1
echo "ceforge: run ${CEFORGE_RUN_ID} starting on $(hostname)"

# Watchdog: nothing outlives the compute environment's maximum run time.
shutdown -h "+${CEFORGE_MAX_RUN_MINUTES}" "ceforge watchdog" || (sleep "$((CEFORGE_MAX_RUN_MINUTES * 60))"; poweroff -f) &

# CloudWatch agent ships the console log to the run's stream.
if [ ! -x /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl ]; then
  dnf install -y -q amazon-cloudwatch-agent || yum install -y -q amazon-cloudwatch-agent || true
fi
printf '%s\n' "$CEFORGE_CW_CONFIG" > "$CEFORGE_DIR/cloudwatch.json"
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c "file:$CEFORGE_DIR/cloudwatch.json" || echo "ceforge: CloudWatch agent did not start"

ceforge_s3cp() {
  if command -v aws >/dev/null 2>&1; then
    aws s3 cp --only-show-errors --region "$CEFORGE_REGION" "$1" "$2"
  else
    docker run --rm --network host -v "$CEFORGE_DIR:$CEFORGE_DIR" -w "$CEFORGE_DIR" public.ecr.aws/aws-cli/aws-cli:2.22.0 s3 cp --only-show-errors --region "$CEFORGE_REGION" "$1" "$2"
  fi
}

ceforge_secret() {
  if command -v aws >/dev/null 2>&1; then
    aws secretsmanager get-secret-value --region "$CEFORGE_REGION" --secret-id "$1" --query SecretString --output text
  else
    docker run --rm --network host public.ecr.aws/aws-cli/aws-cli:2.22.0 secretsmanager get-secret-value --region "$CEFORGE_REGION" --secret-id "$1" --query SecretString --output text
  fi
}
# ceforge_secret_b64 ID: a pipeline secret's value (SecretBinary, base64),
# read with the instance's role.
ceforge_secret_b64() {
  if command -v aws >/dev/null 2>&1; then
    aws secretsmanager get-secret-value --region "$CEFORGE_REGION" --secret-id "$1" --query SecretBinary --output text
  else
    docker run --rm --network host public.ecr.aws/aws-cli/aws-cli:2.22.0 secretsmanager get-secret-value --region "$CEFORGE_REGION" --secret-id "$1" --query SecretBinary --output text
  fi
}
` + secretsh.Functions + `
# ceforge_registry_logins: docker login to each private registry, the
# password through standard input, into the run's own Docker config
# (DOCKER_CONFIG, handed to the Nextflow and studio containers).
ceforge_registry_logins() {
  [ -n "${CEFORGE_REGISTRIES:-}" ] || return 0
  local reg user name
  DOCKER_CONFIG="$CEFORGE_DIR/.docker"
  export DOCKER_CONFIG
  (umask 077; mkdir -p "$DOCKER_CONFIG")
  while read -r reg user name; do
    [ -n "$reg" ] || continue
    (set -o pipefail; ceforge_secret_b64 "${CEFORGE_SECRET_PREFIX}${name}" | base64 -d | docker login --username "$user" --password-stdin "$reg" >/dev/null) || {
      echo "ceforge: could not log in to ${reg}"
      return 1
    }
    echo "ceforge: logged in to ${reg} as ${user}"
  done <<< "$CEFORGE_REGISTRIES"
}

ceforge_finish() {
  trap - EXIT
  cd "$CEFORGE_DIR" || true
  if [ -n "$CEFORGE_POST_RUN" ]; then
    printf '%s\n' "$CEFORGE_POST_RUN" > post-run.sh
    CEFORGE_EXIT_CODE="$CEFORGE_RC" bash post-run.sh || echo "ceforge: post-run script failed with $?"
  fi
  [ -f .nextflow.log ] && cp .nextflow.log ` + NextflowLogFile + `
  [ -f ` + NextflowLogFile + ` ] && ceforge_s3cp "$CEFORGE_DIR/` + NextflowLogFile + `" "$CEFORGE_DEST/` + NextflowLogFile + `"
  printf '%s\n' "$CEFORGE_RC" > ` + ExitStatusFile + `
  ceforge_s3cp "$CEFORGE_DIR/` + ExitStatusFile + `" "$CEFORGE_DEST/` + ExitStatusFile + `" || echo "ceforge: could not upload the exit status"
  echo "ceforge: run ${CEFORGE_RUN_ID} ended with exit code ${CEFORGE_RC}; shutting down"
  sleep 5 # let the agent flush the last lines
  shutdown -h now
}
trap ceforge_finish EXIT
cd "$CEFORGE_DIR" || exit 1
systemctl start docker 2>/dev/null || true

if ! ceforge_registry_logins; then
  CEFORGE_RC=1
  exit
fi

if [ -n "$CEFORGE_PRE_RUN" ]; then
  printf '%s\n' "$CEFORGE_PRE_RUN" > pre-run.sh
  bash pre-run.sh
  CEFORGE_RC=$?
  if [ "$CEFORGE_RC" -ne 0 ]; then
    echo "ceforge: pre-run script failed with exit code ${CEFORGE_RC}"
    exit
  fi
fi
`

// pipelineBody runs Nextflow in Docker with the host's Docker socket (tasks
// run as sibling containers), the S3 work dir, and the cloud cache in the
// work dir so a relaunch can resume.
const pipelineBody = `
cat > ceforge.config <<'CEFORGE_EOF'
docker.enabled = true
wave.enabled = true
fusion.enabled = true
CEFORGE_EOF
printf '%s\n' "$CEFORGE_CONFIG" > nextflow.config
CEFORGE_ARGS=(run "$CEFORGE_PIPELINE" -c ceforge.config -c nextflow.config -w "$CEFORGE_WORK_DIR")
[ -n "$CEFORGE_REVISION" ] && CEFORGE_ARGS+=(-r "$CEFORGE_REVISION")
[ -n "$CEFORGE_PROFILES" ] && CEFORGE_ARGS+=(-profile "$CEFORGE_PROFILES")
[ -n "$CEFORGE_RESUME" ] && CEFORGE_ARGS+=(-resume "$CEFORGE_RESUME")
# Pipeline secrets reach Nextflow by file (NXF_SECRETS_FILE, owner-only)
# and a Seqera token by name: both travel into the container as -e NAME
# (the value from this shell's environment, never on a command line).
if ! ceforge_secrets || ! ceforge_seqera_token; then
  CEFORGE_RC=1
  exit
fi
CEFORGE_TRACE_FLAGS=()
if [ -n "$CEFORGE_TRACE_URL" ]; then
  # Progress goes to ceforge. The token is read with the instance's role
  # into this shell only and handed to Docker by name (-e NAME), never on
  # a command line. Wave requests go through ceforge's relay, which checks
  # the token and keeps it from Wave (see README "Live progress"). Nextflow
  # has one tower token: the run's replaces a Seqera token.
  if TOWER_ACCESS_TOKEN=$(ceforge_secret "$CEFORGE_TRACE_SECRET") && [ -n "$TOWER_ACCESS_TOKEN" ]; then
    export TOWER_ACCESS_TOKEN TOWER_WORKFLOW_ID="$CEFORGE_RUN_ID"
    printf 'wave.endpoint = "%s/wave"\n' "$CEFORGE_TRACE_URL" >> ceforge.config
    CEFORGE_ARGS+=(-with-tower "$CEFORGE_TRACE_URL")
    CEFORGE_TRACE_FLAGS=(-e TOWER_ACCESS_TOKEN -e TOWER_WORKFLOW_ID)
  else
    unset TOWER_ACCESS_TOKEN
    echo "ceforge: could not read the run's progress token; running without live progress"
  fi
fi
CEFORGE_SECRET_FLAGS=()
[ -n "${NXF_SECRETS_FILE:-}" ] && CEFORGE_SECRET_FLAGS+=(-e NXF_SECRETS_FILE)
[ -n "${TOWER_ACCESS_TOKEN:-}" ] && [ ${#CEFORGE_TRACE_FLAGS[@]} -eq 0 ] && CEFORGE_SECRET_FLAGS+=(-e TOWER_ACCESS_TOKEN)
[ -n "${DOCKER_CONFIG:-}" ] && CEFORGE_SECRET_FLAGS+=(-e DOCKER_CONFIG)
if [ -n "$CEFORGE_PARAMS_FILE" ]; then
  printf '%s\n' "$CEFORGE_PARAMS" > "$CEFORGE_PARAMS_FILE"
  CEFORGE_ARGS+=(-params-file "$CEFORGE_PARAMS_FILE")
fi
docker run --rm --name ceforge-nextflow --network host \
  -v /var/run/docker.sock:/var/run/docker.sock -v "$CEFORGE_DIR:$CEFORGE_DIR" -w "$CEFORGE_DIR" \
  -e NXF_HOME="$CEFORGE_DIR/.nextflow" -e NXF_ANSI_LOG=false \
  -e NXF_CLOUDCACHE_PATH="$CEFORGE_WORK_DIR/.ceforge/cache" \
  -e AWS_REGION="$CEFORGE_REGION" -e AWS_DEFAULT_REGION="$CEFORGE_REGION" "${CEFORGE_TRACE_FLAGS[@]}" "${CEFORGE_SECRET_FLAGS[@]}"@ENV_FLAGS@ \
  "$CEFORGE_NXF_IMAGE" nextflow "${CEFORGE_ARGS[@]}"
CEFORGE_RC=$?
`

// studioBody runs the Studio's container until it exits or the instance
// is terminated (cancel, Spot interruption, watchdog). Its port is published
// on the loopback interface only: users reach it through Session Manager
// port forwarding, never from the network.
const studioBody = `
docker run --rm --name ceforge-studio -p "127.0.0.1:$CEFORGE_STUDIO_PORT:$CEFORGE_STUDIO_PORT" \
  -e PORT="$CEFORGE_STUDIO_PORT" -e AWS_REGION="$CEFORGE_REGION"@ENV_FLAGS@ \
  "$CEFORGE_STUDIO_IMAGE"
CEFORGE_RC=$?
`
