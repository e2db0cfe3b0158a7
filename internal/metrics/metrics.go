// Package metrics emits CloudWatch metrics in Embedded Metric Format: one
// JSON log line per metric, which CloudWatch Logs turns into metrics without
// any API call from the function. The dashboard and alarms of the CDK app
// read these names.
package metrics

import (
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"
)

// Namespace of every ceforge metric.
const Namespace = "ceforge"

// Metric names (the CDK dashboard refers to these).
const (
	RunStatus         = "RunStatusChanges"  // count; dimension Status
	TimeToRunning     = "TimeToRunning"     // milliseconds; dimension Platform
	EventLag          = "EventLag"          // milliseconds from the event's own time; dimension Kind
	EventsProcessed   = "EventsProcessed"   // count; dimensions Kind, Outcome
	SweepItemsDeleted = "SweepItemsDeleted" // count; dimension ResourceKind
	SweepDollarsSaved = "SweepDollarsSaved" // estimated USD per month; no dimension
)

// Units.
const (
	Count        = "Count"
	Milliseconds = "Milliseconds"
	None         = "None"
)

// Emitter writes EMF records.
type Emitter struct {
	mu  sync.Mutex
	out io.Writer
	now func() time.Time
}

// New returns an emitter writing to out (os.Stdout in Lambda).
func New(out io.Writer) *Emitter { return &Emitter{out: out, now: time.Now} }

var std = New(os.Stdout)

// Default returns the process-wide emitter (stdout).
func Default() *Emitter { return std }

// Discard is an emitter that writes nothing (tests, benchmarks, local tools).
var Discard = &Emitter{}

// Put writes one metric value with its dimensions (name -> value).
func (e *Emitter) Put(name string, value float64, unit string, dims map[string]string) {
	if e == nil || e.out == nil {
		return
	}
	keys := make([]string, 0, len(dims))
	rec := map[string]any{name: value}
	for k, v := range dims {
		keys = append(keys, k)
		rec[k] = v
	}
	rec["_aws"] = map[string]any{
		"Timestamp": e.now().UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  Namespace,
			"Dimensions": [][]string{keys},
			"Metrics":    []any{map[string]string{"Name": name, "Unit": unit}},
		}},
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.out.Write(append(b, '\n'))
}
