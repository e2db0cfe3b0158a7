// Package run is the model of runs (pipelines and studios): the launch
// request, the status state machine, and the Launcher each platform
// implements to start, cancel and reconcile a run's head.
package run

import (
	"fmt"
	"strconv"
	"time"
)

// Kinds of run.
const (
	KindPipeline = "pipeline"
	KindStudio   = "studio"
)

// Status of a run.
const (
	StatusSubmitted = "SUBMITTED"
	StatusRunning   = "RUNNING"
	StatusUnknown   = "UNKNOWN"
	StatusSucceeded = "SUCCEEDED"
	StatusFailed    = "FAILED"
	StatusCancelled = "CANCELLED"
)

// Rank orders statuses. A run moves to a higher rank at any time, so
// duplicate and late events are no-ops; terminal statuses share the top rank
// and the first one recorded is final. RUNNING and UNKNOWN share a rank: each
// replaces the other only on newer evidence (an observation dated after the
// one that set the current status; see Revisable), so a head seen stopped
// and then running again is RUNNING again, while a late copy of the old
// "stopped" event changes nothing.
func Rank(status string) int {
	switch status {
	case StatusSubmitted:
		return 10
	case StatusRunning, StatusUnknown:
		return 20
	case StatusSucceeded, StatusFailed, StatusCancelled:
		return 30
	}
	return 0
}

// Revisable reports whether status may be replaced by another status of its
// rank on newer evidence (RUNNING and UNKNOWN).
func Revisable(status string) bool { return Rank(status) == 20 }

// Moves reports whether a run in status from may move to status to under
// the rank rules, before the evidence times are compared (which the store's
// conditional write does): a higher rank, or another status of a
// revisable rank.
func Moves(from, to string) bool {
	rf, rt := Rank(from), Rank(to)
	return rt > rf || (rt == rf && from != to && Revisable(to))
}

// Terminal reports whether status is final.
func Terminal(status string) bool { return Rank(status) == 30 }

// MaxClockSkew is how far in the future an observation may be dated; a
// later time (a wrong clock, a placeholder) is taken as the time it is
// applied.
const MaxClockSkew = 5 * time.Minute

// Place returns the time to record for a run reaching status (RUNNING or a
// terminal status) as observed at at, applied at now. The timeline stays
// ordered and every duration positive: running after submitted, completed
// after running (or submitted), each at least a millisecond later; a zero
// or far-future at is taken as now.
func (t Timeline) Place(status string, at, now time.Time) time.Time {
	at, now = at.UTC(), now.UTC()
	if at.IsZero() || at.After(now.Add(MaxClockSkew)) {
		at = now
	}
	floor := t.Submitted
	if Terminal(status) && t.Running != nil && (floor == nil || t.Running.After(*floor)) {
		floor = t.Running
	}
	if floor != nil && !at.After(*floor) {
		at = floor.Add(time.Millisecond)
	}
	if status == StatusRunning && t.Completed != nil && !at.Before(*t.Completed) {
		// A late running time of an ended run: before its end.
		at = t.Completed.Add(-time.Millisecond)
		if floor != nil && !at.After(*floor) {
			at = floor.Add(time.Millisecond)
		}
	}
	return at
}

// ActiveStatuses are the statuses of runs that have not ended.
var ActiveStatuses = []string{StatusSubmitted, StatusRunning, StatusUnknown}

// Run is a pipeline or studio run; the same shape is the API response and
// the stored record.
type Run struct {
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	ComputeEnvID string `json:"computeEnvId"`
	Platform     string `json:"platform"`
	RunName      string `json:"runName"`
	// Region and AccountID are where the run's head runs: its compute
	// environment's region and, for a member account, that account ("":
	// the control plane's). Events about the run must come from there.
	Region    string `json:"region,omitempty"`
	AccountID string `json:"accountId,omitempty"`

	Pipeline        string            `json:"pipeline,omitempty"`
	Revision        string            `json:"revision,omitempty"`
	ConfigProfiles  []string          `json:"configProfiles,omitempty"`
	ParamsText      string            `json:"paramsText,omitempty"`
	ConfigText      string            `json:"configText,omitempty"`
	PreRunScript    string            `json:"preRunScript,omitempty"`
	PostRunScript   string            `json:"postRunScript,omitempty"`
	WorkDir         string            `json:"workDir"`
	Labels          map[string]string `json:"labels,omitempty"`
	HeadJobCpus     int               `json:"headJobCpus,omitempty"`
	HeadJobMemoryMb int               `json:"headJobMemoryMb,omitempty"`
	Studio          *Studio           `json:"studio,omitempty"`
	// Secrets are the pipeline secrets (names, never values) the head
	// hands Nextflow: the compute environment's and the run's own.
	Secrets []string `json:"secrets,omitempty"`

	Status          string    `json:"status"`
	StatusReason    string    `json:"statusReason,omitempty"`
	Timeline        Timeline  `json:"timeline"`
	TimeToRunningMs *int64    `json:"timeToRunningMs,omitempty"`
	ExitCode        *int      `json:"exitCode,omitempty"`
	Progress        *Progress `json:"progress,omitempty"`
	Backend         *Backend  `json:"backend,omitempty"`
	Logs            *LogRef   `json:"logs,omitempty"`
	CancelRequested bool      `json:"cancelRequested,omitempty"`
	CancelReason    string    `json:"cancelReason,omitempty"`
	SpotInterrupted bool      `json:"spotInterrupted,omitempty"`

	// Trace says whether the head reports its progress to ceforge.
	Trace *Trace `json:"trace,omitempty"`
	// MaxCostUSD cancels the run when its cost passes it.
	MaxCostUSD *float64 `json:"maxCostUsd,omitempty"`
	// RelaunchOf is the run this one was relaunched from; ResumeSessionID
	// the Nextflow session it resumes (-resume), if any.
	RelaunchOf      string `json:"relaunchOf,omitempty"`
	ResumeSessionID string `json:"resumeSessionId,omitempty"`

	CreatedBy string    `json:"createdBy,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	Version   int64     `json:"version"`
}

// Trace is how a run's head reports progress (Nextflow's -with-tower).
type Trace struct {
	Enabled bool `json:"enabled"`
	// Reason says why reporting is off.
	Reason string `json:"reason,omitempty"`
	// Endpoint is the URL the head reports to.
	Endpoint string `json:"endpoint,omitempty"`
	// Secret is the name of the Secrets Manager secret, in the compute
	// environment's account and region, that holds the run's token; the
	// head reads it at start with its own role.
	Secret string `json:"secret,omitempty"`
	// TokenHash is the SHA-256 of the token: the only form the table
	// keeps. Never returned by the API (Public).
	TokenHash string `json:"tokenHash,omitempty"`
	// Token is the token itself between issue and launch, in memory only.
	Token string `json:"-"`
}

// Public returns the run as the API shows it: without the token hash.
func (r *Run) Public() *Run {
	if r == nil || r.Trace == nil || r.Trace.TokenHash == "" {
		return r
	}
	c := *r
	t := *r.Trace
	t.TokenHash = ""
	c.Trace = &t
	return &c
}

// DefaultStudioPort is a studio's port when the launch names none.
const DefaultStudioPort = 8888

// Studio options of a studio run.
type Studio struct {
	Image string `json:"image"`
	Port  int    `json:"port,omitempty"`
	Spot  bool   `json:"spot,omitempty"`
}

// Timeline holds the times a run reached each phase.
type Timeline struct {
	Submitted *time.Time `json:"submitted,omitempty"`
	Running   *time.Time `json:"running,omitempty"`
	Completed *time.Time `json:"completed,omitempty"`
}

// Progress counts a Batch run's compute tasks.
type Progress struct {
	Submitted int `json:"submitted"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// Backend types.
const (
	BackendEC2   = "ec2-instance"
	BackendBatch = "batch-job"
)

// Backend identifies what runs the head of a run.
type Backend struct {
	Type       string `json:"type"`
	InstanceID string `json:"instanceId,omitempty"`
	JobID      string `json:"jobId,omitempty"`
	JobQueue   string `json:"jobQueue,omitempty"`
	Region     string `json:"region,omitempty"`
	// InstanceType and Spot price an AWS Cloud head (and the tasks it runs
	// itself); HeadCpus, HeadMemoryMb and Fargate a Batch head.
	InstanceType string `json:"instanceType,omitempty"`
	Spot         bool   `json:"spot,omitempty"`
	HeadCpus     int    `json:"headCpus,omitempty"`
	HeadMemoryMb int    `json:"headMemoryMb,omitempty"`
	Fargate      bool   `json:"fargate,omitempty"`

	// ContainerInstanceARN is the ECS container instance a Batch studio's
	// job runs on, as Batch reports it (events, DescribeJobs).
	ContainerInstanceARN string `json:"containerInstanceArn,omitempty"`
	// HostInstanceID is the EC2 instance behind ContainerInstanceARN: the
	// host a Batch studio is reached through (found once, then recorded).
	HostInstanceID string `json:"hostInstanceId,omitempty"`
}

// LogRef says where the run's console log is.
type LogRef struct {
	Group  string `json:"group"`
	Stream string `json:"stream"`
}

// Active reports whether the run has not ended.
func (r *Run) Active() bool { return !Terminal(r.Status) }

// Studio access: Session Manager port forwarding to the studio's host, so
// no inbound rule or public address is needed.
const (
	ConnectMethodSSM       = "ssm-port-forwarding"
	PortForwardingDocument = "AWS-StartPortForwardingSession"
)

// Connect says how to reach a running studio (GET /runs/{id}).
type Connect struct {
	Method     string `json:"method"`
	InstanceID string `json:"instanceId"`
	Region     string `json:"region"`
	Port       int    `json:"port"`
	Document   string `json:"document"`
	// Command is the AWS CLI command that forwards the same local port.
	Command string `json:"command"`
}

// StudioHost returns the EC2 instance a studio is reached through: its
// head instance (AWS Cloud), or the Batch host its job runs on (once
// known); "" when there is none.
func StudioHost(r *Run) string {
	if r.Backend == nil {
		return ""
	}
	if r.Backend.Type == BackendBatch {
		return r.Backend.HostInstanceID
	}
	return r.Backend.InstanceID
}

// StudioConnect returns how to reach r, or nil when r is not a running
// studio on a known host.
func StudioConnect(r *Run) *Connect {
	host := StudioHost(r)
	if r.Kind != KindStudio || r.Status != StatusRunning || r.Studio == nil || host == "" {
		return nil
	}
	port := strconv.Itoa(r.Studio.Port)
	return &Connect{
		Method: ConnectMethodSSM, InstanceID: host, Region: r.Backend.Region, Port: r.Studio.Port,
		Document: PortForwardingDocument,
		Command: fmt.Sprintf(`aws ssm start-session --region %s --target %s --document-name %s --parameters '{"portNumber":["%s"],"localPortNumber":["%s"]}'`,
			r.Backend.Region, host, PortForwardingDocument, port, port),
	}
}

// ObservedFrom reports whether an event from account and region can be
// about r: its compute environment's region, and its member account (or,
// for the control plane's own account, controlPlaneAccount when known).
// Runs recorded before the location was kept, and events that name no
// account or region, are not held to it.
func (r *Run) ObservedFrom(account, region, controlPlaneAccount string) bool {
	if r.Region != "" && region != "" && region != r.Region {
		return false
	}
	want := r.AccountID
	if want == "" {
		want = controlPlaneAccount
	}
	return want == "" || account == "" || account == want
}
