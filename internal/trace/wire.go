package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The wire types follow what Nextflow 23.04 to 26.x sends (Groovy's JSON
// generator): nulls are written out, unknown fields appear in newer
// versions, dates are Java OffsetDateTime strings that drop zero seconds
// ("2019-05-06T12:04+02:00"), numbers sometimes arrive as strings and
// nativeId is a number (a PID) or a string (a job id). This decoder is
// deliberately tolerant, unlike the API's strict one: Nextflow cannot be
// told to change, and a run must never fail because its report was odd.

// Num is a number that may be null, absent, or a numeric string.
type Num struct {
	V   float64
	Set bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (n *Num) UnmarshalJSON(b []byte) error {
	*n = Num{}
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return nil
		}
		s = strings.TrimSpace(s)
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			*n = Num{V: v, Set: true}
		}
		return nil
	}
	if b[0] == 't' || b[0] == 'f' || b[0] == '{' || b[0] == '[' {
		return nil // not a number: ignored, never fatal
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return nil
	}
	*n = Num{V: v, Set: true}
	return nil
}

// Int64 returns the value as an int64 pointer (nil when unset).
func (n Num) Int64() *int64 {
	if !n.Set {
		return nil
	}
	v := int64(n.V)
	return &v
}

// Float returns the value as a float64 pointer (nil when unset).
func (n Num) Float() *float64 {
	if !n.Set {
		return nil
	}
	v := n.V
	return &v
}

// Text is a string that may be null, or a number or boolean written as JSON.
type Text string

// UnmarshalJSON implements json.Unmarshaler.
func (t *Text) UnmarshalJSON(b []byte) error {
	*t = ""
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil
	}
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = Text(s)
	case '{', '[':
		// A structure where text was expected: keep nothing.
	default:
		*t = Text(b) // number or boolean, as written
	}
	return nil
}

// Flag is a boolean that may be null.
type Flag struct {
	V   bool
	Set bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Flag) UnmarshalJSON(b []byte) error {
	*f = Flag{}
	switch string(b) {
	case "true", `"true"`:
		*f = Flag{V: true, Set: true}
	case "false", `"false"`:
		*f = Flag{V: false, Set: true}
	}
	return nil
}

// Time is a date as Nextflow writes it: an OffsetDateTime string (seconds
// and fractions optional, "Z" or an offset), a java.util.Date
// "yyyy-MM-dd'T'HH:mm:ss'Z'", or epoch milliseconds; null is unset.
type Time struct {
	T   time.Time
	Set bool
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	*t = Time{}
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil
	}
	if b[0] != '"' {
		if ms, err := strconv.ParseFloat(string(b), 64); err == nil {
			*t = Time{T: time.UnixMilli(int64(ms)).UTC(), Set: true}
		}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return nil
	}
	if v, ok := ParseTime(s); ok {
		*t = Time{T: v, Set: true}
	}
	return nil
}

// ParseTime parses a Nextflow date leniently (see Time).
func ParseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	// Java may print a zone id after the offset: "…+02:00[Europe/Rome]".
	if i := strings.IndexByte(s, '['); i > 0 {
		s = s[:i]
	}
	for _, layout := range timeLayouts {
		if v, err := time.Parse(layout, s); err == nil {
			return v.UTC(), true
		}
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), true
	}
	return time.Time{}, false
}

// Ptr returns the time as a pointer (nil when unset).
func (t Time) Ptr() *time.Time {
	if !t.Set {
		return nil
	}
	v := t.T
	return &v
}

// CreateRequest is the body of POST /trace/create.
type CreateRequest struct {
	SessionID   Text `json:"sessionId"`
	RunName     Text `json:"runName"`
	ProjectName Text `json:"projectName"`
	Repository  Text `json:"repository"`
	WorkflowID  Text `json:"workflowId"`
	LaunchID    Text `json:"launchId"` // deprecated alias of workflowId
	Instant     Num  `json:"instant"`
}

// WorkflowBody is the workflow object of begin and complete.
type WorkflowBody struct {
	ID              Text            `json:"id"`
	SessionID       Text            `json:"sessionId"`
	RunName         Text            `json:"runName"`
	ProjectName     Text            `json:"projectName"`
	Repository      Text            `json:"repository"`
	Revision        Text            `json:"revision"`
	CommitID        Text            `json:"commitId"`
	ScriptName      Text            `json:"scriptName"`
	Profile         Text            `json:"profile"`
	Resume          Flag            `json:"resume"`
	StubRun         Flag            `json:"stubRun"`
	Container       Text            `json:"container"`
	ContainerEngine Text            `json:"containerEngine"`
	CommandLine     Text            `json:"commandLine"`
	WorkDir         Text            `json:"workDir"`
	LaunchDir       Text            `json:"launchDir"`
	ProjectDir      Text            `json:"projectDir"`
	OutputDir       Text            `json:"outputDir"`
	UserName        Text            `json:"userName"`
	ConfigFiles     []Text          `json:"configFiles"`
	Start           Time            `json:"start"`
	Complete        Time            `json:"complete"`
	Duration        Num             `json:"duration"`
	Success         Flag            `json:"success"`
	ExitStatus      Num             `json:"exitStatus"`
	ErrorMessage    Text            `json:"errorMessage"`
	ErrorReport     Text            `json:"errorReport"`
	Params          json.RawMessage `json:"params"`
	ConfigText      Text            `json:"configText"`
	Nextflow        struct {
		Version Text `json:"version"`
		Build   Text `json:"build"`
	} `json:"nextflow"`
	Wave struct {
		Enabled Flag `json:"enabled"`
	} `json:"wave"`
	Fusion struct {
		Enabled Flag `json:"enabled"`
	} `json:"fusion"`
}

// BeginRequest is the body of PUT /trace/{id}/begin.
type BeginRequest struct {
	Workflow     WorkflowBody `json:"workflow"`
	ProcessNames []Text       `json:"processNames"`
	TowerLaunch  Flag         `json:"towerLaunch"`
	Instant      Num          `json:"instant"`
}

// TaskBody is one task of a progress call (TraceRecord keys).
type TaskBody struct {
	TaskID               Num  `json:"taskId"`
	Status               Text `json:"status"`
	Hash                 Text `json:"hash"`
	Name                 Text `json:"name"`
	Process              Text `json:"process"`
	Tag                  Text `json:"tag"`
	Container            Text `json:"container"`
	Attempt              Num  `json:"attempt"`
	Exit                 Num  `json:"exit"`
	ErrorAction          Text `json:"errorAction"`
	NativeID             Text `json:"nativeId"`
	Submit               Time `json:"submit"`
	Start                Time `json:"start"`
	Complete             Time `json:"complete"`
	Duration             Num  `json:"duration"`
	Realtime             Num  `json:"realtime"`
	PCPU                 Num  `json:"pcpu"`
	PMem                 Num  `json:"pmem"`
	RSS                  Num  `json:"rss"`
	VMem                 Num  `json:"vmem"`
	PeakRSS              Num  `json:"peakRss"`
	PeakVMem             Num  `json:"peakVmem"`
	RChar                Num  `json:"rchar"`
	WChar                Num  `json:"wchar"`
	ReadBytes            Num  `json:"readBytes"`
	WriteBytes           Num  `json:"writeBytes"`
	SysCR                Num  `json:"syscr"`
	SysCW                Num  `json:"syscw"`
	VolCtxt              Num  `json:"volCtxt"`
	InvCtxt              Num  `json:"invCtxt"`
	Cpus                 Num  `json:"cpus"`
	Memory               Num  `json:"memory"`
	Disk                 Num  `json:"disk"`
	Time                 Num  `json:"time"`
	Queue                Text `json:"queue"`
	Workdir              Text `json:"workdir"`
	Hostname             Text `json:"hostname"`
	Executor             Text `json:"executor"`
	CloudZone            Text `json:"cloudZone"`
	MachineType          Text `json:"machineType"`
	PriceModel           Text `json:"priceModel"`
	NumSpotInterruptions Num  `json:"numSpotInterruptions"`
}

// ProgressBody is Nextflow's WorkflowProgress (and each ProcessProgress).
type ProgressBody struct {
	Index       Num            `json:"index"`
	Name        Text           `json:"name"`
	Pending     Num            `json:"pending"`
	Submitted   Num            `json:"submitted"`
	Running     Num            `json:"running"`
	Succeeded   Num            `json:"succeeded"`
	Failed      Num            `json:"failed"`
	Cached      Num            `json:"cached"`
	Ignored     Num            `json:"ignored"`
	Retries     Num            `json:"retries"`
	Aborted     Num            `json:"aborted"`
	Stored      Num            `json:"stored"`
	Terminated  Flag           `json:"terminated"`
	LoadCpus    Num            `json:"loadCpus"`
	LoadMemory  Num            `json:"loadMemory"`
	PeakRunning Num            `json:"peakRunning"`
	PeakCpus    Num            `json:"peakCpus"`
	PeakMemory  Num            `json:"peakMemory"`
	Processes   []ProgressBody `json:"processes"`
}

// ProgressRequest is the body of PUT /trace/{id}/progress.
type ProgressRequest struct {
	Tasks    []TaskBody    `json:"tasks"`
	Progress *ProgressBody `json:"progress"`
	Instant  Num           `json:"instant"`
}

// HeartbeatRequest is the body of PUT /trace/{id}/heartbeat.
type HeartbeatRequest struct {
	Progress *ProgressBody `json:"progress"`
	Instant  Num           `json:"instant"`
}

// StatsBody is one resource metric summary.
type StatsBody struct {
	Mean     Num  `json:"mean"`
	Min      Num  `json:"min"`
	Q1       Num  `json:"q1"`
	Q2       Num  `json:"q2"`
	Q3       Num  `json:"q3"`
	Max      Num  `json:"max"`
	MinLabel Text `json:"minLabel"`
	MaxLabel Text `json:"maxLabel"`
	Q1Label  Text `json:"q1Label"`
	Q2Label  Text `json:"q2Label"`
	Q3Label  Text `json:"q3Label"`
}

// MetricsBody is one process's metrics in complete.
type MetricsBody struct {
	Process   Text       `json:"process"`
	CPU       *StatsBody `json:"cpu"`
	Mem       *StatsBody `json:"mem"`
	VMem      *StatsBody `json:"vmem"`
	Time      *StatsBody `json:"time"`
	Reads     *StatsBody `json:"reads"`
	Writes    *StatsBody `json:"writes"`
	CPUUsage  *StatsBody `json:"cpuUsage"`
	MemUsage  *StatsBody `json:"memUsage"`
	TimeUsage *StatsBody `json:"timeUsage"`
}

// CompleteRequest is the body of PUT /trace/{id}/complete.
type CompleteRequest struct {
	Workflow WorkflowBody  `json:"workflow"`
	Metrics  []MetricsBody `json:"metrics"`
	Progress *ProgressBody `json:"progress"`
	Instant  Num           `json:"instant"`
}

// decode reads one JSON value leniently: unknown fields and odd values are
// ignored; only malformed JSON (or the wrong top-level shape) is an error.
func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("malformed JSON body: %w", err)
	}
	return nil
}
