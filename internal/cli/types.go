package cli

import (
	"time"
)

// The API's shapes, as far as the CLI shows them. -o json and -o yaml
// print the API's own answer, so fields not listed here are never lost.

type computeEnv struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	Platform        string     `json:"platform"`
	ConfigMode      string     `json:"configMode"`
	Region          string     `json:"region"`
	WorkDir         string     `json:"workDir"`
	Status          string     `json:"status"`
	StatusReason    string     `json:"statusReason"`
	Warnings        []string   `json:"warnings"`
	ForgedResources []resource `json:"forgedResources"`
	CreatedBy       string     `json:"createdBy"`
	CreatedAt       time.Time  `json:"createdAt"`
}

type resource struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	ARN   string `json:"arn"`
	ID    string `json:"id"`
	State string `json:"state"`
}

type dryRun struct {
	ComputeEnv *computeEnv `json:"computeEnv"`
	Plan       *struct {
		Resources []struct {
			Action string `json:"action"`
			Type   string `json:"type"`
			Name   string `json:"name"`
		} `json:"resources"`
	} `json:"plan"`
}

type runRec struct {
	ID              string     `json:"id"`
	Kind            string     `json:"kind"`
	ComputeEnvID    string     `json:"computeEnvId"`
	Platform        string     `json:"platform"`
	RunName         string     `json:"runName"`
	Pipeline        string     `json:"pipeline"`
	Revision        string     `json:"revision"`
	WorkDir         string     `json:"workDir"`
	Status          string     `json:"status"`
	StatusReason    string     `json:"statusReason"`
	Timeline        timeline   `json:"timeline"`
	TimeToRunningMs *int64     `json:"timeToRunningMs"`
	ExitCode        *int       `json:"exitCode"`
	Progress        *counters  `json:"progress"`
	Backend         *backend   `json:"backend"`
	Studio          *studio    `json:"studio"`
	Connect         *connect   `json:"connect"`
	CreatedBy       string     `json:"createdBy"`
	CreatedAt       time.Time  `json:"createdAt"`
	RelaunchOf      string     `json:"relaunchOf"`
	ResumeSessionID string     `json:"resumeSessionId"`
	MaxCostUSD      *float64   `json:"maxCostUsd"`
	Trace           *traceInfo `json:"trace"`
	CancelReason    string     `json:"cancelReason"`
	Labels          labelsType `json:"labels"`
}

// traceInfo says whether a run's head reports its progress (Run.trace).
type traceInfo struct {
	Enabled bool   `json:"enabled"`
	Reason  string `json:"reason"`
}

type labelsType map[string]string

type timeline struct {
	Submitted *time.Time `json:"submitted"`
	Running   *time.Time `json:"running"`
	Completed *time.Time `json:"completed"`
}

type counters struct {
	Submitted int `json:"submitted"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// runProgress is GET /runs/{id}/progress (RunProgress): what Nextflow
// reports of a run.
type runProgress struct {
	RunID           string            `json:"runId"`
	Status          string            `json:"status"`
	Reporting       bool              `json:"reporting"`
	ReportingReason string            `json:"reportingReason"`
	Phase           string            `json:"phase"`
	Stale           bool              `json:"stale"`
	LastUpdate      *time.Time        `json:"lastUpdate"`
	Counts          progressCounts    `json:"counts"`
	Processes       []processProgress `json:"processes"`
	Cost            runCost           `json:"cost"`
	Workflow        *workflowInfo     `json:"workflow"`
}

// progressCounts are task counters and loads (ProgressCounts).
type progressCounts struct {
	Pending     int   `json:"pending"`
	Submitted   int   `json:"submitted"`
	Running     int   `json:"running"`
	Succeeded   int   `json:"succeeded"`
	Failed      int   `json:"failed"`
	Cached      int   `json:"cached"`
	Ignored     int   `json:"ignored"`
	Retries     int   `json:"retries"`
	Aborted     int   `json:"aborted"`
	LoadCpus    int   `json:"loadCpus"`
	LoadMemory  int64 `json:"loadMemory"`
	PeakRunning int   `json:"peakRunning"`
	PeakCpus    int   `json:"peakCpus"`
	PeakMemory  int64 `json:"peakMemory"`
}

// total is every task counted (retries are counted in their own attempts).
func (c progressCounts) total() int {
	return c.Pending + c.Submitted + c.Running + c.Succeeded + c.Failed + c.Cached + c.Ignored + c.Aborted
}

// done are the tasks that ended well.
func (c progressCounts) done() int { return c.Succeeded + c.Cached + c.Ignored }

// processProgress is one process's counters (ProcessProgress).
type processProgress struct {
	Index      int    `json:"index"`
	Name       string `json:"name"`
	Terminated bool   `json:"terminated"`
	Stored     int    `json:"stored"`
	progressCounts
}

// runCost is a run's cost so far (RunCost).
type runCost struct {
	TasksUSD      float64  `json:"tasksUsd"`
	HeadUSD       float64  `json:"headUsd"`
	TotalUSD      float64  `json:"totalUsd"`
	MaxCostUSD    *float64 `json:"maxCostUsd"`
	PricedTasks   int      `json:"pricedTasks"`
	UnpricedTasks int      `json:"unpricedTasks"`
	PriceTable    string   `json:"priceTable"`
}

// workflowInfo is what ran and how it ended (WorkflowInfo).
type workflowInfo struct {
	SessionID       string     `json:"sessionId"`
	NextflowVersion string     `json:"nextflowVersion"`
	CommandLine     string     `json:"commandLine"`
	Revision        string     `json:"revision"`
	Resume          bool       `json:"resume"`
	Start           *time.Time `json:"start"`
	Complete        *time.Time `json:"complete"`
	Success         *bool      `json:"success"`
	ExitStatus      *int       `json:"exitStatus"`
	ErrorMessage    string     `json:"errorMessage"`
}

// task is one task (one attempt) of a run (Task).
type task struct {
	TaskID       int64      `json:"taskId"`
	Status       string     `json:"status"`
	Process      string     `json:"process"`
	Name         string     `json:"name"`
	Tag          string     `json:"tag"`
	Hash         string     `json:"hash"`
	NativeID     string     `json:"nativeId"`
	Exit         *int       `json:"exit"`
	Attempt      int        `json:"attempt"`
	ErrorAction  string     `json:"errorAction"`
	Submit       *time.Time `json:"submit"`
	Start        *time.Time `json:"start"`
	Complete     *time.Time `json:"complete"`
	DurationMs   *int64     `json:"durationMs"`
	RealtimeMs   *int64     `json:"realtimeMs"`
	Cpus         *float64   `json:"cpus"`
	MemoryBytes  *int64     `json:"memoryBytes"`
	PeakRSSBytes *int64     `json:"peakRssBytes"`
	MachineType  string     `json:"machineType"`
	PriceModel   string     `json:"priceModel"`
	CostUSD      *float64   `json:"costUsd"`
	Workdir      string     `json:"workdir"`
}

type backend struct {
	Type       string `json:"type"`
	InstanceID string `json:"instanceId"`
	JobID      string `json:"jobId"`
	JobQueue   string `json:"jobQueue"`
	Region     string `json:"region"`
}

type studio struct {
	Image string `json:"image"`
	Port  int    `json:"port"`
	Spot  bool   `json:"spot"`
}

// connect is how to reach a running studio (GET /runs/{id}).
type connect struct {
	Method     string `json:"method"`
	InstanceID string `json:"instanceId"`
	Region     string `json:"region"`
	Port       int    `json:"port"`
	Document   string `json:"document"`
	Command    string `json:"command"`
}

type sweepReport struct {
	ID                   string     `json:"id"`
	Status               string     `json:"status"`
	Trigger              string     `json:"trigger"`
	DryRun               bool       `json:"dryRun"`
	CreatedAt            time.Time  `json:"createdAt"`
	FinishedAt           *time.Time `json:"finishedAt"`
	StopReason           string     `json:"stopReason"`
	Volumes              sweepCount `json:"volumes"`
	Instances            sweepCount `json:"instances"`
	Jobs                 sweepCount `json:"jobs"`
	GiBFreed             int64      `json:"gibFreed"`
	GiBReclaimable       int64      `json:"gibReclaimable"`
	DollarsPerMonthSaved float64    `json:"dollarsPerMonthSaved"`
	Skipped              []struct {
		Kind   string `json:"kind"`
		Reason string `json:"reason"`
		Count  int    `json:"count"`
	} `json:"skipped"`
	Errors []string `json:"errors"`
}

type sweepCount struct {
	Examined    int `json:"examined"`
	Eligible    int `json:"eligible"`
	Deleted     int `json:"deleted"`
	WouldDelete int `json:"wouldDelete"`
	Skipped     int `json:"skipped"`
	Failed      int `json:"failed"`
}

type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor"`
}

type logPage struct {
	Lines []struct {
		Timestamp time.Time `json:"timestamp"`
		Message   string    `json:"message"`
	} `json:"lines"`
	NextCursor string `json:"nextCursor"`
	Producing  bool   `json:"producing"`
	Status     string `json:"status"`
}

// Terminal statuses.
func runEnded(s string) bool { return s == "SUCCEEDED" || s == "FAILED" || s == "CANCELLED" }

func ceSettled(s string) bool {
	return s == "AVAILABLE" || s == "ERRORED" || s == "DELETED" || s == "INVALID"
}

func sweepEnded(s string) bool { return s == "SUCCEEDED" || s == "INCOMPLETE" || s == "FAILED" }
