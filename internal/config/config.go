// Package config reads ceforge's runtime configuration from the environment.
// The CDK app sets these variables on every function; `make local` sets them
// for the local server. Names and defaults are documented in the README.
package config

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is the runtime configuration shared by all functions.
type Config struct {
	// Table is the DynamoDB table (CEFORGE_TABLE, default "ceforge").
	Table string
	// Region is the control plane's region (AWS_REGION, default us-east-1).
	Region string
	// Endpoint, when set, sends every AWS call to the local emulator
	// (CEFORGE_AWS_ENDPOINT). Never set in AWS.
	Endpoint string
	// Prefix names every AWS resource ceforge creates, so IAM policies can be
	// scoped to it (CEFORGE_PREFIX, default "ceforge-").
	Prefix string
	// AllowedRegions limits where compute environments may be created
	// (CEFORGE_ALLOWED_REGIONS, comma-separated; empty means the platform's
	// supported list).
	AllowedRegions []string
	// AllowedBuckets are the buckets compute environments and runs may use
	// for work directories and allowBuckets: names or patterns with '*'
	// (CEFORGE_ALLOWED_BUCKETS, comma-separated, set by the CDK app from
	// its allowedBuckets; default: buckets named with the prefix, <prefix>*).
	// The permissions boundary lets forged roles reach these only.
	AllowedBuckets []string
	// RunLogGroup receives the console logs of EC2 head instances
	// (CEFORGE_RUN_LOG_GROUP, default /ceforge/runs).
	RunLogGroup string
	// SweepDryRun makes scheduled sweeps report only (CEFORGE_SWEEP_DRY_RUN).
	SweepDryRun bool
	// SweepGrace is how long an orphan must stay orphaned before it is
	// deleted (CEFORGE_SWEEP_GRACE, Go duration, default 30m).
	SweepGrace time.Duration
	// SweepGP3Price is the USD per GiB-month used to estimate what a sweep
	// saves (CEFORGE_SWEEP_GP3_PRICE, default 0.08).
	SweepGP3Price float64
	// SweepMaxDeletions is the circuit breaker of one sweep
	// (CEFORGE_SWEEP_MAX_DELETIONS, default 4000).
	SweepMaxDeletions int
	// SweeperFunction, set by the CDK app on the API function, makes
	// POST /sweeps invoke that Lambda asynchronously (CEFORGE_SWEEPER_FUNCTION).
	SweeperFunction string
	// ReconcilerFunction, set by the CDK app on the API function, is where
	// the API hands the provisioning steps it cannot take (forging Batch
	// resources, tearing them down): an asynchronous invoke with the CE id
	// (CEFORGE_RECONCILER_FUNCTION). Unset, the reconciler's next scheduled
	// pass takes them.
	ReconcilerFunction string
	// CursorKeySecret is the Secrets Manager secret (ARN) holding the key
	// that signs log cursors, generated at deploy (CEFORGE_CURSOR_KEY_SECRET,
	// set by the CDK app on the api and logs functions). Unset against the
	// local emulator: a random key per process.
	CursorKeySecret string
	// LogsURL is the log-follow Function URL the API points follow clients to
	// (CEFORGE_LOGS_URL, set by the CDK app).
	LogsURL string
	// TraceURL is where run heads report progress (CEFORGE_TRACE_URL): the
	// base URL of the trace routes (the API's URL in AWS; the local
	// server's locally). Empty: runs launch without progress reporting.
	TraceURL string
	// WaveURL is the Wave service the trace function relays heads' Wave
	// requests to (CEFORGE_WAVE_URL, default https://wave.seqera.io).
	WaveURL string
	// LogLevel is debug|info|warn|error (CEFORGE_LOG_LEVEL, default info).
	LogLevel string
	// PermissionsBoundary is the ARN of the managed policy every IAM role
	// ceforge forges is created under (CEFORGE_PERMISSIONS_BOUNDARY, set by
	// the CDK app to its <prefix>boundary policy). The functions that forge
	// roles refuse to start without it; in another account the policy of
	// the same name is used.
	PermissionsBoundary string
	// Account is the control plane's own AWS account (CEFORGE_ACCOUNT, set
	// by the CDK app): events about runs of its compute environments must
	// come from it. Empty (the emulator): not checked.
	Account string
}

// FromEnv reads the configuration from the process environment.
func FromEnv() (Config, error) { return FromLookup(os.LookupEnv) }

// FromLookup reads the configuration through lookup (tests pass a map).
func FromLookup(lookup func(string) (string, bool)) (Config, error) {
	get := func(name, def string) string {
		if v, ok := lookup(name); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	c := Config{
		Table:       get("CEFORGE_TABLE", "ceforge"),
		Region:      get("AWS_REGION", get("AWS_DEFAULT_REGION", "us-east-1")),
		Endpoint:    get("CEFORGE_AWS_ENDPOINT", ""),
		Prefix:      get("CEFORGE_PREFIX", "ceforge-"),
		RunLogGroup: get("CEFORGE_RUN_LOG_GROUP", "/ceforge/runs"),
		LogLevel:    get("CEFORGE_LOG_LEVEL", "info"),

		SweeperFunction:    get("CEFORGE_SWEEPER_FUNCTION", ""),
		ReconcilerFunction: get("CEFORGE_RECONCILER_FUNCTION", ""),
		LogsURL:            get("CEFORGE_LOGS_URL", ""),
		CursorKeySecret:    get("CEFORGE_CURSOR_KEY_SECRET", ""),
		TraceURL:           strings.TrimRight(get("CEFORGE_TRACE_URL", ""), "/"),
		WaveURL:            strings.TrimRight(get("CEFORGE_WAVE_URL", "https://wave.seqera.io"), "/"),

		PermissionsBoundary: get("CEFORGE_PERMISSIONS_BOUNDARY", ""),
		Account:             get("CEFORGE_ACCOUNT", ""),
	}
	if v := get("CEFORGE_ALLOWED_REGIONS", ""); v != "" {
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				c.AllowedRegions = append(c.AllowedRegions, r)
			}
		}
	}
	for _, b := range strings.Split(get("CEFORGE_ALLOWED_BUCKETS", c.Prefix+"*"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			if !bucketPatternRE.MatchString(b) || b == "*" {
				return c, fmt.Errorf("CEFORGE_ALLOWED_BUCKETS: %q is not a bucket name or pattern ('*' alone is not allowed)", b)
			}
			c.AllowedBuckets = append(c.AllowedBuckets, b)
		}
	}
	var err error
	if c.SweepDryRun, err = strconv.ParseBool(get("CEFORGE_SWEEP_DRY_RUN", "false")); err != nil {
		return c, fmt.Errorf("CEFORGE_SWEEP_DRY_RUN: %w", err)
	}
	if c.SweepGrace, err = time.ParseDuration(get("CEFORGE_SWEEP_GRACE", "30m")); err != nil {
		return c, fmt.Errorf("CEFORGE_SWEEP_GRACE: %w", err)
	}
	if c.SweepGP3Price, err = strconv.ParseFloat(get("CEFORGE_SWEEP_GP3_PRICE", "0.08"), 64); err != nil || c.SweepGP3Price <= 0 {
		return c, fmt.Errorf("CEFORGE_SWEEP_GP3_PRICE: use a positive number (USD per GiB-month)")
	}
	if c.SweepMaxDeletions, err = strconv.Atoi(get("CEFORGE_SWEEP_MAX_DELETIONS", "4000")); err != nil || c.SweepMaxDeletions <= 0 {
		return c, fmt.Errorf("CEFORGE_SWEEP_MAX_DELETIONS: use a positive integer")
	}
	for name, u := range map[string]string{"CEFORGE_TRACE_URL": c.TraceURL, "CEFORGE_WAVE_URL": c.WaveURL} {
		if u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return c, fmt.Errorf("%s %q: use an http(s):// URL", name, u)
		}
	}
	if !validPrefix(c.Prefix) {
		return c, fmt.Errorf("CEFORGE_PREFIX %q: use 1-20 characters of a-z, 0-9 and '-'", c.Prefix)
	}
	if b := c.PermissionsBoundary; b != "" && !boundaryRE.MatchString(b) {
		return c, fmt.Errorf("CEFORGE_PERMISSIONS_BOUNDARY %q: use the ARN of a customer managed policy (arn:aws:iam::<account>:policy/<name>)", b)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return c, fmt.Errorf("CEFORGE_LOG_LEVEL %q: use debug, info, warn or error", c.LogLevel)
	}
	return c, nil
}

var bucketPatternRE = regexp.MustCompile(`^[a-z0-9*][a-z0-9.*-]{1,61}[a-z0-9*]$`)

var boundaryRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:policy/[\w+=,.@/-]{1,128}$`)

func validPrefix(p string) bool {
	if len(p) == 0 || len(p) > 20 {
		return false
	}
	for _, ch := range p {
		if !(ch == '-' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}
