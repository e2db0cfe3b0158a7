package computeenv

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ceforge/ceforge/internal/apierr"
)

// CreateRequest is the body of POST /compute-envs. Only these fields are
// accepted; anything else (status, id, …) is an unknown field.
type CreateRequest struct {
	Name           string            `json:"name"`
	Platform       string            `json:"platform"`
	Region         string            `json:"region"`
	WorkDir        string            `json:"workDir"`
	Credentials    *Credentials      `json:"credentials,omitempty"`
	PreRunScript   string            `json:"preRunScript,omitempty"`
	PostRunScript  string            `json:"postRunScript,omitempty"`
	NextflowConfig string            `json:"nextflowConfig,omitempty"`
	Environment    []EnvVar          `json:"environment,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Batch          *BatchOptions     `json:"batch,omitempty"`
	Cloud          *CloudOptions     `json:"cloud,omitempty"`
	// TraceEnabled false turns off progress reporting to ceforge for the
	// CE's runs (default on; see README "Live progress").
	TraceEnabled *bool `json:"traceEnabled,omitempty"`
}

// Limits on request contents.
const (
	MaxNameLen        = 100
	MaxScriptBytes    = 16 << 10
	MaxConfigBytes    = 64 << 10
	MaxEnvVars        = 100
	MaxEnvValueBytes  = 4 << 10
	MaxLabels         = 25
	MaxLabelKeyLen    = 128
	MaxLabelValueLen  = 256
	MaxWorkDirLen     = 1024
	MaxListItems      = 50 // instance types, subnets, security groups, buckets
	MaxExternalIDLen  = 1224
	ReservedTagPrefix = "ceforge:"
)

var (
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	regionRE     = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$`)
	roleARNRE    = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`) // bounded repeats blow up the compiled program: lengths are checked in code
	externalIDRE = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelKeyRE   = regexp.MustCompile(`^[\p{L}\p{N} _.:/=+@-]+$`)
	labelValueRE = regexp.MustCompile(`^[\p{L}\p{N} _.:/=+@-]*$`)
	bucketRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// Validate checks the platform-independent fields. Platform options are
// checked by the platform's Provisioner.
func (r *CreateRequest) Validate(allowedRegions []string) error {
	switch {
	case r.Name == "":
		return apierr.Missing("name")
	case len(r.Name) > MaxNameLen || !nameRE.MatchString(r.Name):
		return apierr.Invalid("name", "name must be 1-%d characters of letters, digits, '-' and '_', starting with a letter or digit", MaxNameLen)
	}
	switch r.Platform {
	case "":
		return apierr.Missing("platform")
	case PlatformBatch, PlatformCloud:
	default:
		return apierr.Invalid("platform", "platform must be %q or %q", PlatformBatch, PlatformCloud)
	}
	if r.Region == "" {
		return apierr.Missing("region")
	}
	if !regionRE.MatchString(r.Region) {
		return apierr.Invalid("region", "%q is not an AWS region name", r.Region)
	}
	if len(allowedRegions) > 0 && !slices.Contains(allowedRegions, r.Region) {
		return apierr.Invalid("region", "region %q is not allowed here; allowed: %s", r.Region, strings.Join(allowedRegions, ", "))
	}
	if err := r.validateWorkDir(); err != nil {
		return err
	}
	if c := r.Credentials; c != nil {
		if len(c.RoleARN) > 2048 || !roleARNRE.MatchString(c.RoleARN) {
			return apierr.Invalid("credentials.roleArn", "roleArn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
		}
		if c.ExternalID != "" && (len(c.ExternalID) < 2 || len(c.ExternalID) > MaxExternalIDLen || !externalIDRE.MatchString(c.ExternalID)) {
			return apierr.Invalid("credentials.externalId", "externalId must be 2-%d characters of letters, digits and +=,.@:/-_", MaxExternalIDLen)
		}
	}
	for field, s := range map[string]string{"preRunScript": r.PreRunScript, "postRunScript": r.PostRunScript} {
		if err := CheckText(field, s, MaxScriptBytes); err != nil {
			return err
		}
	}
	if err := CheckText("nextflowConfig", r.NextflowConfig, MaxConfigBytes); err != nil {
		return err
	}
	if err := validateEnv(r.Environment); err != nil {
		return err
	}
	if err := ValidateLabels("labels", r.Labels); err != nil {
		return err
	}
	if r.Batch != nil && r.Platform != PlatformBatch {
		return apierr.Invalid("batch", "the batch block goes with platform %q", PlatformBatch)
	}
	if r.Cloud != nil && r.Platform != PlatformCloud {
		return apierr.Invalid("cloud", "the cloud block goes with platform %q", PlatformCloud)
	}
	return nil
}

func (r *CreateRequest) validateWorkDir() error {
	w := r.WorkDir
	if w == "" {
		return apierr.Missing("workDir")
	}
	if len(w) > MaxWorkDirLen {
		return apierr.Invalid("workDir", "workDir is longer than %d characters", MaxWorkDirLen)
	}
	if strings.HasPrefix(w, "s3://") {
		_, _, err := ParseS3URI("workDir", w)
		return err
	}
	// A shared file system path is allowed only where one is mounted: by
	// forge (EFS/FSx options) or, in manual mode, by the user's hosts.
	f := r.forge()
	manualMount := r.Batch != nil && f == nil && r.Batch.WorkDirMount != ""
	if manualMount || f != nil && (f.EfsID != "" || f.EfsCreate || f.FsxName != "" || f.FsxSize > 0) {
		if !strings.HasPrefix(w, "/") || hasDotSegment(w) || strings.ContainsAny(w, "\x00\n\r") {
			return apierr.Invalid("workDir", "workDir on a shared file system must be an absolute path without '..' segments")
		}
		return nil
	}
	return apierr.Invalid("workDir", "workDir must be an S3 URI (s3://bucket/prefix) unless an EFS or FSx file system is configured (forge: batch.forge.efs*/fsx*; manual: batch.workDirMount)")
}

func (r *CreateRequest) forge() *ForgeOptions {
	if r.Batch == nil {
		return nil
	}
	return r.Batch.Forge
}

// ParseS3URI splits s3://bucket/key and checks both parts; field names the
// request field in errors.
func ParseS3URI(field, uri string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return "", "", apierr.Invalid(field, "%s must start with s3://", field)
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if !bucketRE.MatchString(bucket) || strings.Contains(bucket, "..") {
		return "", "", apierr.Invalid(field, "%q is not a valid S3 bucket name", bucket)
	}
	key = strings.TrimSuffix(key, "/")
	if hasDotSegment(key) || strings.ContainsAny(key, "\x00\n\r\\") {
		return "", "", apierr.Invalid(field, "%s must not contain '.' or '..' path segments, backslashes or control characters", field)
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f {
			return "", "", apierr.Invalid(field, "%s must not contain control characters", field)
		}
	}
	return bucket, key, nil
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// CheckText bounds a free-text field (scripts, configs, environment values,
// ecsConfig) and refuses control characters other than newline and tab:
// they reach user data, launch templates, job definitions and environments,
// where a bare carriage return ends a line for some readers (cloud-init's
// MIME parser) and not for others (bash), and NUL ends the text for C.
func CheckText(field, s string, max int) error {
	if len(s) > max {
		return apierr.Invalid(field, "%s is %d bytes; the limit is %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return apierr.Invalid(field, "%s must be UTF-8 text", field)
	}
	for i, c := range s {
		if c == '\n' || c == '\t' {
			continue
		}
		if c < 0x20 || c == 0x7f || c >= 0x80 && c <= 0x9f {
			return apierr.Invalid(field, "%s must not contain control characters other than newline and tab (U+%04X at byte %d)", field, c, i)
		}
	}
	return nil
}

func validateEnv(vars []EnvVar) error {
	if len(vars) > MaxEnvVars {
		return apierr.Invalid("environment", "at most %d environment variables", MaxEnvVars)
	}
	seen := map[string]bool{}
	for i, v := range vars {
		field := fmt.Sprintf("environment[%d]", i)
		if len(v.Name) > 255 || !envNameRE.MatchString(v.Name) {
			return apierr.Invalid(field+".name", "%q is not a valid environment variable name", v.Name)
		}
		if seen[v.Name] {
			return apierr.Invalid(field+".name", "environment variable %q is given twice", v.Name)
		}
		seen[v.Name] = true
		if err := CheckText(field+".value", v.Value, MaxEnvValueBytes); err != nil {
			return err
		}
		if !v.Head && !v.Compute {
			return apierr.Invalid(field, "environment variable %q applies to neither head nor compute jobs", v.Name)
		}
	}
	return nil
}

// ValidateLabels checks resource labels, which become AWS tags.
func ValidateLabels(field string, labels map[string]string) error {
	if len(labels) > MaxLabels {
		return apierr.Invalid(field, "at most %d labels", MaxLabels)
	}
	for k, v := range labels {
		switch {
		case k == "" || len(k) > MaxLabelKeyLen || !labelKeyRE.MatchString(k):
			return apierr.Invalid(field, "label key %q must be 1-%d characters of letters, digits, spaces and _.:/=+-@", k, MaxLabelKeyLen)
		case strings.HasPrefix(strings.ToLower(k), "aws:") || strings.HasPrefix(strings.ToLower(k), ReservedTagPrefix):
			return apierr.Invalid(field, "label key %q uses a reserved prefix (aws:, ceforge:)", k)
		case len(v) > MaxLabelValueLen || !labelValueRE.MatchString(v):
			return apierr.Invalid(field, "label %q: value must be at most %d characters of letters, digits, spaces and _.:/=+-@", k, MaxLabelValueLen)
		}
	}
	return nil
}

// CheckList bounds a list option.
func CheckList(field string, n int) error {
	if n > MaxListItems {
		return apierr.Invalid(field, "at most %d items", MaxListItems)
	}
	return nil
}
