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
	Labels          labelsType `json:"labels"`
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
