// Package progress is the read model of what Nextflow reports about a run:
// its workflow and per-process counts, one item per task, the resolved
// workflow metadata, per-process resource metrics and the cost, in the
// single table. The trace receiver writes it (internal/trace); the API
// reads it; Apply turns what it records into run status changes.
//
// Items (partition key):
//
//	PROGRESS#<run>           counts, processes, cost, phase, times (small: rewritten on every call)
//	PROGRESS#<run>#workflow  the workflow object of begin/complete (params, config, command line, error report)
//	PROGRESS#<run>#metrics   per-process resource metrics of complete
//	TASK#<run>#<taskId>      one task, upserted by task id, moving only forward
//
// The trace function's role may write only items whose key starts with
// PROGRESS# or TASK# (dynamodb:LeadingKeys).
package progress

import (
	"time"
)

// Key prefixes of the items this package owns.
const (
	ProgressPrefix = "PROGRESS#"
	TaskPrefix     = "TASK#"
)

// Phases of a run as Nextflow reported it.
const (
	PhaseCreated   = "created"   // trace/create received
	PhaseRunning   = "running"   // trace/begin received
	PhaseCompleted = "completed" // trace/complete received
)

// PhaseRank orders phases: a phase never moves back (late or replayed calls).
func PhaseRank(p string) int {
	switch p {
	case PhaseCreated:
		return 1
	case PhaseRunning:
		return 2
	case PhaseCompleted:
		return 3
	}
	return 0
}

// Task statuses as Nextflow sends them.
const (
	TaskNew       = "NEW"
	TaskSubmitted = "SUBMITTED"
	TaskRunning   = "RUNNING"
	TaskCompleted = "COMPLETED"
	TaskFailed    = "FAILED"
	TaskAborted   = "ABORTED"
	TaskCached    = "CACHED"
)

// TaskStatuses are the statuses a task filter accepts.
var TaskStatuses = []string{TaskNew, TaskSubmitted, TaskRunning, TaskCompleted, TaskFailed, TaskAborted, TaskCached}

// TaskRank orders task statuses: a task's record only moves forward, so a
// duplicate or late progress call never takes it back. A Nextflow task id
// is one attempt (a retry is a new task id), so its statuses are a chain.
func TaskRank(status string) int {
	switch status {
	case TaskNew:
		return 1
	case TaskSubmitted:
		return 2
	case TaskRunning:
		return 3
	case TaskCompleted, TaskFailed, TaskAborted, TaskCached:
		return 4
	}
	return 0
}

// TaskTerminal reports whether a task status is final.
func TaskTerminal(status string) bool { return TaskRank(status) == 4 }

// Counts are the workflow's or one process's task counters and loads, as
// Nextflow's progress object carries them.
type Counts struct {
	Pending     int64 `json:"pending"`
	Submitted   int64 `json:"submitted"`
	Running     int64 `json:"running"`
	Succeeded   int64 `json:"succeeded"`
	Failed      int64 `json:"failed"`
	Cached      int64 `json:"cached"`
	Ignored     int64 `json:"ignored"`
	Retries     int64 `json:"retries"`
	Aborted     int64 `json:"aborted"`
	LoadCpus    int64 `json:"loadCpus"`
	LoadMemory  int64 `json:"loadMemory"`
	PeakRunning int64 `json:"peakRunning"`
	PeakCpus    int64 `json:"peakCpus"`
	PeakMemory  int64 `json:"peakMemory"`
}

// ProcessProgress is one process's counters.
type ProcessProgress struct {
	Index      int64  `json:"index"`
	Name       string `json:"name"`
	Terminated bool   `json:"terminated"`
	Stored     int64  `json:"stored"`
	Counts
}

// Snapshot is the PROGRESS#<run> item.
type Snapshot struct {
	RunID        string            `json:"runId"`
	Phase        string            `json:"phase,omitempty"`
	PhaseRank    int               `json:"phaseRank,omitempty"`
	SessionID    string            `json:"sessionId,omitempty"`
	Counts       Counts            `json:"counts"`
	Processes    []ProcessProgress `json:"processes,omitempty"`
	TasksCostUSD float64           `json:"tasksCostUsd"`
	PricedTasks  int64             `json:"pricedTasks"`
	Unpriced     int64             `json:"unpricedTasks"`
	LastInstant  int64             `json:"lastInstant,omitempty"` // newest body applied (epoch ms, Nextflow's clock)
	CreatedAt    *time.Time        `json:"createdAt,omitempty"`   // trace/create
	BeganAt      *time.Time        `json:"beganAt,omitempty"`
	CompletedAt  *time.Time        `json:"completedAt,omitempty"`
	LastTraceAt  *time.Time        `json:"lastTraceAt,omitempty"` // any accepted call (our clock)
	Success      *bool             `json:"success,omitempty"`
	ErrorMessage string            `json:"errorMessage,omitempty"`
	ExitStatus   *int              `json:"exitStatus,omitempty"`
}

// Workflow is the workflow object of begin and complete: what ran, how,
// and how it ended.
type Workflow struct {
	SessionID       string     `json:"sessionId,omitempty"`
	RunName         string     `json:"runName,omitempty"`
	NextflowVersion string     `json:"nextflowVersion,omitempty"`
	NextflowBuild   string     `json:"nextflowBuild,omitempty"`
	CommandLine     string     `json:"commandLine,omitempty"`
	ProjectName     string     `json:"projectName,omitempty"`
	Repository      string     `json:"repository,omitempty"`
	Revision        string     `json:"revision,omitempty"`
	CommitID        string     `json:"commitId,omitempty"`
	ScriptName      string     `json:"scriptName,omitempty"`
	Profile         string     `json:"profile,omitempty"`
	Resume          bool       `json:"resume"`
	StubRun         bool       `json:"stubRun,omitempty"`
	Container       string     `json:"container,omitempty"`
	ContainerEngine string     `json:"containerEngine,omitempty"`
	WorkDir         string     `json:"workDir,omitempty"`
	LaunchDir       string     `json:"launchDir,omitempty"`
	ProjectDir      string     `json:"projectDir,omitempty"`
	OutputDir       string     `json:"outputDir,omitempty"`
	UserName        string     `json:"userName,omitempty"`
	ConfigFiles     []string   `json:"configFiles,omitempty"`
	ProcessNames    []string   `json:"processNames,omitempty"`
	WaveEnabled     bool       `json:"waveEnabled,omitempty"`
	FusionEnabled   bool       `json:"fusionEnabled,omitempty"`
	Start           *time.Time `json:"start,omitempty"`
	Complete        *time.Time `json:"complete,omitempty"`
	DurationMs      *int64     `json:"durationMs,omitempty"`
	Success         *bool      `json:"success,omitempty"`
	ExitStatus      *int       `json:"exitStatus,omitempty"`
	ErrorMessage    string     `json:"errorMessage,omitempty"`
	ErrorReport     string     `json:"errorReport,omitempty"`
	// ParamsJSON is the params map as JSON text (any shape); ConfigText the
	// resolved configuration.
	ParamsJSON string `json:"paramsJson,omitempty"`
	ConfigText string `json:"configText,omitempty"`
}

// Task is one task (one attempt) of a run.
type Task struct {
	RunID             string     `json:"runId"`
	TaskID            int64      `json:"taskId"`
	Status            string     `json:"status"`
	Process           string     `json:"process,omitempty"`
	Name              string     `json:"name,omitempty"`
	Tag               string     `json:"tag,omitempty"`
	Hash              string     `json:"hash,omitempty"`
	NativeID          string     `json:"nativeId,omitempty"`
	Exit              *int64     `json:"exit,omitempty"` // absent until the task ends
	Attempt           int64      `json:"attempt,omitempty"`
	ErrorAction       string     `json:"errorAction,omitempty"`
	Submit            *time.Time `json:"submit,omitempty"`
	Start             *time.Time `json:"start,omitempty"`
	Complete          *time.Time `json:"complete,omitempty"`
	DurationMs        *int64     `json:"durationMs,omitempty"`
	RealtimeMs        *int64     `json:"realtimeMs,omitempty"`
	Cpus              *float64   `json:"cpus,omitempty"`
	MemoryBytes       *int64     `json:"memoryBytes,omitempty"`
	DiskBytes         *int64     `json:"diskBytes,omitempty"`
	TimeMs            *int64     `json:"timeMs,omitempty"`
	PercentCPU        *float64   `json:"pcpu,omitempty"`
	PercentMem        *float64   `json:"pmem,omitempty"`
	RSS               *int64     `json:"rssBytes,omitempty"`
	PeakRSS           *int64     `json:"peakRssBytes,omitempty"`
	VMem              *int64     `json:"vmemBytes,omitempty"`
	PeakVMem          *int64     `json:"peakVmemBytes,omitempty"`
	ReadChars         *int64     `json:"rchar,omitempty"`
	WriteChars        *int64     `json:"wchar,omitempty"`
	ReadBytes         *int64     `json:"readBytes,omitempty"`
	WriteBytes        *int64     `json:"writeBytes,omitempty"`
	SysCR             *int64     `json:"syscr,omitempty"`
	SysCW             *int64     `json:"syscw,omitempty"`
	VolCtxt           *int64     `json:"volCtxt,omitempty"`
	InvCtxt           *int64     `json:"invCtxt,omitempty"`
	Executor          string     `json:"executor,omitempty"`
	Queue             string     `json:"queue,omitempty"`
	MachineType       string     `json:"machineType,omitempty"`
	CloudZone         string     `json:"cloudZone,omitempty"`
	PriceModel        string     `json:"priceModel,omitempty"`
	SpotInterruptions *int64     `json:"spotInterruptions,omitempty"`
	Container         string     `json:"container,omitempty"`
	Workdir           string     `json:"workdir,omitempty"`
	Hostname          string     `json:"hostname,omitempty"`
	CostUSD           *float64   `json:"costUsd,omitempty"`
	UpdatedAt         time.Time  `json:"updatedAt"`
}

// Stats summarise one resource metric over a process's tasks.
type Stats struct {
	Mean     float64 `json:"mean"`
	Min      float64 `json:"min"`
	Q1       float64 `json:"q1"`
	Q2       float64 `json:"q2"`
	Q3       float64 `json:"q3"`
	Max      float64 `json:"max"`
	MinLabel string  `json:"minLabel,omitempty"`
	MaxLabel string  `json:"maxLabel,omitempty"`
	Q1Label  string  `json:"q1Label,omitempty"`
	Q2Label  string  `json:"q2Label,omitempty"`
	Q3Label  string  `json:"q3Label,omitempty"`
}

// ProcessMetrics are one process's resource metrics from trace/complete:
// cpu (%cpu), mem (peak RSS bytes), vmem, time (realtime ms), reads and
// writes (chars), and usage against what was requested (percent).
type ProcessMetrics struct {
	Process   string `json:"process"`
	CPU       *Stats `json:"cpu,omitempty"`
	Mem       *Stats `json:"mem,omitempty"`
	VMem      *Stats `json:"vmem,omitempty"`
	Time      *Stats `json:"time,omitempty"`
	Reads     *Stats `json:"reads,omitempty"`
	Writes    *Stats `json:"writes,omitempty"`
	CPUUsage  *Stats `json:"cpuUsage,omitempty"`
	MemUsage  *Stats `json:"memUsage,omitempty"`
	TimeUsage *Stats `json:"timeUsage,omitempty"`
}
