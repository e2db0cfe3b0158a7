package run

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/computeenv"
)

// LaunchRequest is the body of POST /runs.
type LaunchRequest struct {
	Kind string `json:"kind"`
	LaunchSettings
	Studio *Studio `json:"studio,omitempty"`
}

// LaunchSettings are a launch's fields besides its kind and studio: a
// relaunch takes them as overrides of the old run's (RelaunchRequest).
type LaunchSettings struct {
	ComputeEnvID    string            `json:"computeEnvId"`
	RunName         string            `json:"runName,omitempty"`
	Pipeline        string            `json:"pipeline,omitempty"`
	Revision        string            `json:"revision,omitempty"`
	ConfigProfiles  []string          `json:"configProfiles,omitempty"`
	ParamsText      string            `json:"paramsText,omitempty"`
	ConfigText      string            `json:"configText,omitempty"`
	PreRunScript    string            `json:"preRunScript,omitempty"`
	PostRunScript   string            `json:"postRunScript,omitempty"`
	WorkDir         string            `json:"workDir,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	HeadJobCpus     int               `json:"headJobCpus,omitempty"`
	HeadJobMemoryMb int               `json:"headJobMemoryMb,omitempty"`
	// MaxCostUSD cancels the run when its cost (tasks and head) passes it.
	MaxCostUSD *float64 `json:"maxCostUsd,omitempty"`
	// TraceEnabled false launches the run without progress reporting to
	// ceforge (the CE's setting otherwise; default on).
	TraceEnabled *bool `json:"traceEnabled,omitempty"`
	// Secrets are pipeline secrets (names) the run gets besides its
	// compute environment's.
	Secrets []string `json:"secrets,omitempty"`
}

// over returns base with each field o sets replacing base's (a field
// cannot be cleared this way). The work directory is the caller's.
func (o LaunchSettings) over(base LaunchSettings) LaunchSettings {
	str := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	str(&base.ComputeEnvID, o.ComputeEnvID)
	str(&base.RunName, o.RunName)
	str(&base.Pipeline, o.Pipeline)
	str(&base.Revision, o.Revision)
	str(&base.ParamsText, o.ParamsText)
	str(&base.ConfigText, o.ConfigText)
	str(&base.PreRunScript, o.PreRunScript)
	str(&base.PostRunScript, o.PostRunScript)
	if o.ConfigProfiles != nil {
		base.ConfigProfiles = o.ConfigProfiles
	}
	if o.Labels != nil {
		base.Labels = o.Labels
	}
	if o.HeadJobCpus != 0 {
		base.HeadJobCpus = o.HeadJobCpus
	}
	if o.HeadJobMemoryMb != 0 {
		base.HeadJobMemoryMb = o.HeadJobMemoryMb
	}
	if o.MaxCostUSD != nil {
		base.MaxCostUSD = o.MaxCostUSD
	}
	if o.TraceEnabled != nil {
		base.TraceEnabled = o.TraceEnabled
	}
	if o.Secrets != nil {
		base.Secrets = o.Secrets
	}
	return base
}

// Limits on launch requests.
const (
	MaxProfiles          = 20
	MaxParamsBytes       = 64 << 10
	MaxRunNameLen        = 80
	MaxPipelineLen       = 512
	MaxHeadCpus          = 192
	MaxHeadMemoryMb      = 1 << 20
	MinHeadMemoryMb      = 512
	MaxIdempotencyKeyLen = 128
	MaxCostLimitUSD      = 1e6
)

var (
	runNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	pipelineRE = regexp.MustCompile(`^(https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~-]+)+/?|[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)$`)
	revisionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`) // lengths checked in code
	profileRE  = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	imageRE    = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$`)
)

// Validate checks the platform-independent fields of a launch request.
func (r *LaunchRequest) Validate() error {
	switch r.Kind {
	case "":
		return apierr.Missing("kind")
	case KindPipeline, KindStudio:
	default:
		return apierr.Invalid("kind", "kind must be %q or %q", KindPipeline, KindStudio)
	}
	if r.ComputeEnvID == "" {
		return apierr.Missing("computeEnvId")
	}
	if r.RunName != "" && (len(r.RunName) > MaxRunNameLen || !runNameRE.MatchString(r.RunName)) {
		return apierr.Invalid("runName", "runName must be 1-%d characters of letters, digits, '-' and '_'", MaxRunNameLen)
	}
	if r.Kind == KindPipeline {
		if r.Pipeline == "" {
			return apierr.Missing("pipeline")
		}
		if r.Studio != nil {
			return apierr.Invalid("studio", "studio options go with kind %q", KindStudio)
		}
	}
	// A value starting with '-' would read as an option of `nextflow run`.
	if strings.HasPrefix(r.Pipeline, "-") {
		return apierr.Invalid("pipeline", "pipeline must not start with '-'")
	}
	if strings.HasPrefix(r.Revision, "-") {
		return apierr.Invalid("revision", "revision must not start with '-'")
	}
	if r.Pipeline != "" && (len(r.Pipeline) > MaxPipelineLen || !pipelineRE.MatchString(r.Pipeline) || strings.Contains(r.Pipeline, "..")) {
		return apierr.Invalid("pipeline", "pipeline must be an https:// repository URL or an owner/name shorthand")
	}
	if r.Revision != "" && (len(r.Revision) > 128 || !revisionRE.MatchString(r.Revision) || strings.Contains(r.Revision, "..")) {
		return apierr.Invalid("revision", "revision must be a branch, tag or commit name")
	}
	if len(r.ConfigProfiles) > MaxProfiles {
		return apierr.Invalid("configProfiles", "at most %d profiles", MaxProfiles)
	}
	for i, p := range r.ConfigProfiles {
		if strings.HasPrefix(p, "-") {
			return apierr.Invalid(fmt.Sprintf("configProfiles[%d]", i), "profile %q must not start with '-'", p)
		}
		if len(p) > 64 || !profileRE.MatchString(p) {
			return apierr.Invalid(fmt.Sprintf("configProfiles[%d]", i), "profile %q must be letters, digits, '.', '-' and '_'", p)
		}
	}
	if err := validateParams(r.ParamsText); err != nil {
		return err
	}
	if err := computeenv.CheckText("configText", r.ConfigText, computeenv.MaxConfigBytes); err != nil {
		return err
	}
	for field, s := range map[string]string{"preRunScript": r.PreRunScript, "postRunScript": r.PostRunScript} {
		if err := computeenv.CheckText(field, s, computeenv.MaxScriptBytes); err != nil {
			return err
		}
	}
	if r.WorkDir != "" {
		if _, _, err := computeenv.ParseS3URI("workDir", r.WorkDir); err != nil {
			return err
		}
	}
	if err := computeenv.ValidateLabels("labels", r.Labels); err != nil {
		return err
	}
	if r.HeadJobCpus < 0 || r.HeadJobCpus > MaxHeadCpus {
		return apierr.Invalid("headJobCpus", "headJobCpus must be between 1 and %d", MaxHeadCpus)
	}
	if r.HeadJobMemoryMb != 0 && (r.HeadJobMemoryMb < MinHeadMemoryMb || r.HeadJobMemoryMb > MaxHeadMemoryMb) {
		return apierr.Invalid("headJobMemoryMb", "headJobMemoryMb must be between %d and %d", MinHeadMemoryMb, MaxHeadMemoryMb)
	}
	if r.MaxCostUSD != nil && !(*r.MaxCostUSD > 0 && *r.MaxCostUSD <= MaxCostLimitUSD) {
		return apierr.Invalid("maxCostUsd", "maxCostUsd must be a number of US dollars above 0 and at most %g", float64(MaxCostLimitUSD))
	}
	if err := computeenv.CheckSecretNames("secrets", r.Secrets); err != nil {
		return err
	}
	if r.Kind == KindStudio && len(r.Secrets) > 0 {
		return apierr.Invalid("secrets", "secrets go to pipelines (Nextflow); a studio gets none")
	}
	if r.Kind == KindStudio {
		if r.Studio == nil {
			return apierr.Missing("studio")
		}
		if r.Studio.Image == "" {
			return apierr.Missing("studio.image")
		}
		if len(r.Studio.Image) > 512 || !imageRE.MatchString(r.Studio.Image) {
			return apierr.Invalid("studio.image", "%q is not a container image reference", r.Studio.Image)
		}
		if r.Studio.Port < 0 || r.Studio.Port > 65535 {
			return apierr.Invalid("studio.port", "studio.port must be between 1 and 65535")
		}
	}
	return nil
}

// validateParams accepts a JSON or YAML object.
func validateParams(text string) error {
	if err := computeenv.CheckText("paramsText", text, MaxParamsBytes); err != nil {
		return err
	}
	if strings.TrimSpace(text) == "" {
		return nil
	}
	var obj map[string]any
	if json.Unmarshal([]byte(text), &obj) == nil {
		return nil
	}
	if err := yaml.Unmarshal([]byte(text), &obj); err != nil || obj == nil {
		return apierr.Invalid("paramsText", "paramsText must be a JSON or YAML object")
	}
	return nil
}

// ValidIdempotencyKey reports whether an Idempotency-Key header is usable:
// 1-128 printable ASCII characters.
func ValidIdempotencyKey(k string) bool {
	if k == "" || len(k) > MaxIdempotencyKeyLen {
		return false
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
