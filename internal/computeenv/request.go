package computeenv

import (
	"encoding/json"
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
	Name     string `json:"name"`
	Platform string `json:"platform"`
	Region   string `json:"region"`
	WorkDir  string `json:"workDir"`
	// CredentialsID names registered credentials (POST /credentials): the
	// member account the CE lives in.
	CredentialsID string `json:"credentialsId,omitempty"`
	// Credentials is refused with an explanation: a caller no longer
	// chooses a role and External ID (see CredentialsID).
	Credentials    json.RawMessage   `json:"credentials,omitempty"`
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

	Secrets             []string             `json:"secrets,omitempty"`
	SeqeraTokenSecret   string               `json:"seqeraTokenSecret,omitempty"`
	RegistryCredentials []RegistryCredential `json:"registryCredentials,omitempty"`
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
	ReservedTagPrefix = "ceforge:"
)

var (
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	regionRE     = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$`)
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
	if r.Credentials != nil {
		return apierr.BadRequest("credentials_not_accepted", "credentials",
			"a compute environment no longer takes a role and External ID: register the role with POST /credentials (ceforge generates its External ID and verifies it) and name it with credentialsId")
	}
	if r.CredentialsID != "" && len(r.CredentialsID) > 64 {
		return apierr.Invalid("credentialsId", "credentials %q not found", r.CredentialsID)
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
	if err := CheckSecretNames("secrets", r.Secrets); err != nil {
		return err
	}
	if r.SeqeraTokenSecret != "" {
		if err := CheckSecretName("seqeraTokenSecret", r.SeqeraTokenSecret); err != nil {
			return err
		}
	}
	if err := checkRegistryCredentials(r.Platform, r.RegistryCredentials); err != nil {
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

// MaxRegistryCredentials bounds registryCredentials.
const MaxRegistryCredentials = 10

var (
	registryRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$`)
	userRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]*$`)
)

func checkRegistryCredentials(platform string, creds []RegistryCredential) error {
	if len(creds) == 0 {
		return nil
	}
	if platform != PlatformCloud {
		return apierr.Invalid("registryCredentials", "registryCredentials go with platform %q (the head host logs in); Batch hosts pull through their ECS agent: use ECR, or Wave with seqeraTokenSecret", PlatformCloud)
	}
	if len(creds) > MaxRegistryCredentials {
		return apierr.Invalid("registryCredentials", "at most %d registries", MaxRegistryCredentials)
	}
	seen := map[string]bool{}
	for i, c := range creds {
		f := fmt.Sprintf("registryCredentials[%d]", i)
		switch {
		case c.Registry == "":
			return apierr.Missing(f + ".registry")
		case len(c.Registry) > 253 || !registryRE.MatchString(c.Registry):
			return apierr.Invalid(f+".registry", "registry must be a host name (with an optional :port), such as ghcr.io")
		case seen[c.Registry]:
			return apierr.Invalid(f+".registry", "registry %q is listed twice", c.Registry)
		case c.Username == "":
			return apierr.Missing(f + ".username")
		case len(c.Username) > 256 || !userRE.MatchString(c.Username):
			return apierr.Invalid(f+".username", "username must be letters, digits and ._@+-")
		}
		seen[c.Registry] = true
		if err := CheckSecretName(f+".passwordSecret", c.PasswordSecret); err != nil {
			return err
		}
	}
	return nil
}
