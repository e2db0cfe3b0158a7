package progress

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ceforge/ceforge/internal/price"
	"github.com/ceforge/ceforge/internal/run"
)

// Phase of a run that has not reported yet.
const PhaseWaiting = "waiting"

// View is GET /runs/{id}/progress: the run's live progress as Nextflow
// reports it, its cost, and what ran.
type View struct {
	RunID  string `json:"runId"`
	Status string `json:"status"`
	// Reporting says whether the run's head reports to ceforge; when not,
	// ReportingReason says why (and only Batch task counters exist).
	Reporting       bool   `json:"reporting"`
	ReportingReason string `json:"reportingReason,omitempty"`
	// Phase: waiting (nothing received yet), created, running, completed.
	Phase string `json:"phase"`
	// Stale: the run's head runs but Nextflow has not reported for
	// StaleAfter (the trace stopped; the status is left alone).
	Stale      bool              `json:"stale"`
	LastUpdate *time.Time        `json:"lastUpdate,omitempty"`
	Counts     Counts            `json:"counts"`
	Processes  []ProcessProgress `json:"processes"`
	Cost       Cost              `json:"cost"`
	Workflow   *WorkflowView     `json:"workflow,omitempty"`
}

// Cost is a run's cost so far (or in all once it ended), in USD.
type Cost struct {
	TasksUSD      float64  `json:"tasksUsd"`
	HeadUSD       float64  `json:"headUsd"`
	TotalUSD      float64  `json:"totalUsd"`
	MaxCostUSD    *float64 `json:"maxCostUsd,omitempty"`
	PricedTasks   int64    `json:"pricedTasks"`
	UnpricedTasks int64    `json:"unpricedTasks"`
	// PriceTable is the date of the price table the figures come from.
	PriceTable string `json:"priceTable"`
}

// WorkflowView is the workflow metadata with params as JSON.
type WorkflowView struct {
	Workflow
	// ParamsJSON is replaced by Params in the view.
	ParamsJSON *struct{}       `json:"paramsJson,omitempty"`
	Params     json.RawMessage `json:"params,omitempty"`
}

// BuildView assembles the progress view of a run.
func BuildView(r *run.Run, snap *Snapshot, wf *Workflow, t *price.Table, staleAfter time.Duration, now time.Time) View {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	v := View{RunID: r.ID, Status: r.Status, Phase: PhaseWaiting, Processes: []ProcessProgress{}}
	if r.Trace != nil {
		v.Reporting, v.ReportingReason = r.Trace.Enabled, r.Trace.Reason
	} else if r.Kind == run.KindPipeline {
		v.ReportingReason = "launched before ceforge received progress, or without a trace endpoint"
	} else {
		v.ReportingReason = "studios run no Nextflow"
	}
	if snap != nil {
		if snap.Phase != "" {
			v.Phase = snap.Phase
		}
		v.LastUpdate = snap.LastTraceAt
		v.Counts = snap.Counts
		if snap.Processes != nil {
			v.Processes = snap.Processes
		}
		v.Cost.TasksUSD, v.Cost.PricedTasks, v.Cost.UnpricedTasks = snap.TasksCostUSD, snap.PricedTasks, snap.Unpriced
	}
	v.Cost.HeadUSD = HeadCost(t, r, now)
	v.Cost.TotalUSD = v.Cost.TasksUSD + v.Cost.HeadUSD
	v.Cost.MaxCostUSD = r.MaxCostUSD
	v.Cost.PriceTable = t.Date
	v.Stale = Stale(r, snap, staleAfter, now)
	if wf != nil {
		w := WorkflowView{Workflow: *wf}
		if json.Valid([]byte(wf.ParamsJSON)) {
			w.Params = json.RawMessage(wf.ParamsJSON)
		}
		w.Workflow.ParamsJSON = ""
		v.Workflow = &w
	}
	return v
}

// Stale reports whether a reporting run's head runs while its trace has
// been silent for staleAfter (or never spoke since the head started).
func Stale(r *run.Run, snap *Snapshot, staleAfter time.Duration, now time.Time) bool {
	if r.Status != run.StatusRunning || r.Trace == nil || !r.Trace.Enabled {
		return false
	}
	if snap != nil && snap.Phase == PhaseCompleted {
		return false
	}
	last := r.Timeline.Running
	if snap != nil && snap.LastTraceAt != nil {
		last = snap.LastTraceAt
	}
	return last != nil && now.Sub(*last) > staleAfter
}

// ViewOf reads a run's progress items and builds its view (one read).
func (s *Store) ViewOf(ctx context.Context, r *run.Run, t *price.Table, now time.Time) (View, error) {
	snap, wf, haveSnap, haveWf, err := s.Read(ctx, r.ID)
	if err != nil {
		return View{}, err
	}
	var sp *Snapshot
	var wp *Workflow
	if haveSnap {
		sp = &snap
	}
	if haveWf {
		wp = &wf
	}
	return BuildView(r, sp, wp, t, DefaultStaleAfter, now), nil
}
