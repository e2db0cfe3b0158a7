// Package secretsh is the shell both heads (the Batch head job's script and
// the AWS Cloud head's user data) run to hand pipeline secrets to Nextflow.
// The platform defines ceforge_secret_b64 ID (the secret's value, base64,
// read with the head's own role); these functions do the rest. Values go
// from Secrets Manager through pipes into an owner-only file; they are
// never printed, never on a command line, never in the job's or the
// instance's definition.
package secretsh

// Functions reads, from the environment the head was given (names only):
//
//	CEFORGE_SECRETS              the run's secret names, space-separated
//	CEFORGE_SECRET_PREFIX        their Secrets Manager name prefix (<prefix>secrets/)
//	CEFORGE_SEQERA_TOKEN_SECRET  the secret holding a Seqera access token, or empty
//	CEFORGE_DIR                  the head's own directory
//
// ceforge_secrets writes Nextflow's secrets file (NXF_SECRETS_FILE, a JSON
// list of {name, value}, mode 0600 as Nextflow requires), where
// secrets.NAME in the config and the secret directive find them.
// ceforge_seqera_token exports TOWER_ACCESS_TOKEN, which Nextflow gives
// Wave and Fusion. Both fail (non-zero) when a secret cannot be read.
const Functions = `
# ceforge_json_string: standard input as one JSON string (values hold no
# control characters but newline, carriage return and tab: the API refuses
# others).
ceforge_json_string() {
  local s
  s=$(cat; printf x)
  s=${s%x}
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

ceforge_secrets() {
  [ -n "${CEFORGE_SECRETS:-}" ] || return 0
  local name sep=""
  NXF_SECRETS_FILE="$CEFORGE_DIR/.secrets/store.json"
  export NXF_SECRETS_FILE
  (
    set -o pipefail
    umask 077
    mkdir -p "$CEFORGE_DIR/.secrets" || exit 1
    printf '[' > "$NXF_SECRETS_FILE" || exit 1
    for name in $CEFORGE_SECRETS; do
      printf '%s{"name":"%s","value":' "$sep" "$name" >> "$NXF_SECRETS_FILE"
      ceforge_secret_b64 "${CEFORGE_SECRET_PREFIX}${name}" | base64 -d | ceforge_json_string >> "$NXF_SECRETS_FILE" || {
        echo "ceforge: could not read the run's secret ${name}"
        exit 1
      }
      printf '}' >> "$NXF_SECRETS_FILE"
      sep=,
    done
    printf ']' >> "$NXF_SECRETS_FILE"
    chmod 600 "$NXF_SECRETS_FILE"
  ) || { rm -f "$NXF_SECRETS_FILE"; return 1; }
  echo "ceforge: the run's secrets are in Nextflow's secrets file: ${CEFORGE_SECRETS}"
}

ceforge_seqera_token() {
  [ -n "${CEFORGE_SEQERA_TOKEN_SECRET:-}" ] || return 0
  local t
  t=$(set -o pipefail; ceforge_secret_b64 "${CEFORGE_SECRET_PREFIX}${CEFORGE_SEQERA_TOKEN_SECRET}" | base64 -d && printf x) || {
    echo "ceforge: could not read the Seqera token secret ${CEFORGE_SEQERA_TOKEN_SECRET}"
    return 1
  }
  TOWER_ACCESS_TOKEN=${t%x}
  export TOWER_ACCESS_TOKEN
}
`
