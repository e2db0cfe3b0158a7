package progress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/price"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
)

// DefaultStaleAfter is how long a running run may stay silent before its
// progress is stale: Nextflow sends a heartbeat every minute when idle.
const DefaultStaleAfter = 5 * time.Minute

// Applier turns what a run's trace recorded into run changes, through the
// one place run status rules live (run.Service.Transition, as events do):
// begin moves a SUBMITTED run to RUNNING (never an UNKNOWN one back: the
// head's state is the events' and the reconciler's to say), complete an
// active run to SUCCEEDED, FAILED (or CANCELLED with the cancel's reason
// when one was asked for), and a cost past maxCostUsd cancels it as a
// user's cancel does (the head's end records CANCELLED). An ended run is
// never changed. It runs where runs may
// be changed and heads stopped: the reconciler (handed a run by the trace
// function, and on every pass), or the local server in-process.
type Applier struct {
	Runs     *run.Service
	Progress *Store
	Prices   *price.Table
	Log      *slog.Logger
	Now      func() time.Time
}

func (a *Applier) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

func (a *Applier) prices() *price.Table {
	if a.Prices != nil {
		return a.Prices
	}
	return price.Default
}

// Apply reads a run and its snapshot and applies what they say.
func (a *Applier) Apply(ctx context.Context, runID string) error {
	r, err := a.Runs.Get(ctx, runID)
	if e, ok := apierr.As(err); ok && e.Status == 404 {
		return nil
	}
	if err != nil {
		return err
	}
	snap, ok, err := a.Progress.Snapshot(ctx, runID)
	if err != nil || !ok {
		return err
	}
	return a.apply(ctx, r, &snap)
}

// ApplyActive applies the snapshots of the given active runs (the
// reconciler's pass: what a lost hand-off missed), 100 reads a call.
func (a *Applier) ApplyActive(ctx context.Context, runs []run.Run) error {
	var errs []error
	for start := 0; start < len(runs); start += 100 {
		chunk := runs[start:min(start+100, len(runs))]
		keys := make([]map[string]types.AttributeValue, 0, len(chunk))
		for i := range chunk {
			if chunk[i].Trace != nil && chunk[i].Trace.Enabled {
				keys = append(keys, pk(snapshotKey(chunk[i].ID)))
			}
		}
		if len(keys) == 0 {
			continue
		}
		items, err := a.Progress.batchGet(ctx, keys, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("read progress snapshots: %w", err))
			continue
		}
		for i := range chunk {
			it, ok := items[snapshotKey(chunk[i].ID)]
			if !ok {
				continue
			}
			var snap Snapshot
			if err := store.Unmarshal(it, &snap); err != nil {
				errs = append(errs, fmt.Errorf("decode progress of run %s: %w", chunk[i].ID, err))
				continue
			}
			if err := a.apply(ctx, &chunk[i], &snap); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (a *Applier) apply(ctx context.Context, r *run.Run, snap *Snapshot) error {
	if !r.Active() {
		return nil
	}
	switch snap.Phase {
	case PhaseCompleted:
		u := run.Update{Status: run.StatusFailed, ExitCode: snap.ExitStatus}
		if snap.CompletedAt != nil {
			u.At = *snap.CompletedAt
		}
		if snap.BeganAt != nil {
			u.RunningAt = *snap.BeganAt // when begin was not applied yet
		}
		switch {
		case r.CancelRequested:
			u.Status, u.Reason = run.StatusCancelled, r.CancelledReason()
		case snap.Success != nil && *snap.Success:
			u.Status = run.StatusSucceeded
		default:
			msg := strings.TrimSpace(snap.ErrorMessage)
			if msg == "" {
				msg = "the workflow failed"
			}
			u.Reason = "nextflow: " + msg
		}
		if _, err := a.Runs.Transition(ctx, r, u); err != nil {
			return fmt.Errorf("apply completion of run %s: %w", r.ID, err)
		}
		return nil
	case PhaseRunning:
		if r.Status == run.StatusSubmitted {
			u := run.Update{Status: run.StatusRunning}
			if snap.BeganAt != nil {
				u.At = *snap.BeganAt
			}
			if _, err := a.Runs.Transition(ctx, r, u); err != nil {
				return fmt.Errorf("apply begin of run %s: %w", r.ID, err)
			}
		}
	}
	if r.MaxCostUSD != nil && r.Active() && !r.CancelRequested {
		total := snap.TasksCostUSD + HeadCost(a.prices(), r, a.now())
		if total > *r.MaxCostUSD {
			reason := fmt.Sprintf("cost limit reached: $%.2f spent, maxCostUsd is $%.2f", total, *r.MaxCostUSD)
			a.log().Info("cancelling run over its cost limit", "run_id", r.ID, "cost_usd", total, "max_cost_usd", *r.MaxCostUSD)
			if err := a.Runs.Stop(ctx, r, reason); err != nil {
				return fmt.Errorf("stop run %s over its cost limit: %w", r.ID, err)
			}
		}
	}
	return nil
}

func (a *Applier) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}

// representativeHead prices a Batch head on EC2 (its instance is shared and
// unknown): its share of a general-purpose instance.
const representativeHead = "m6i.xlarge"

// HeadCost is what a run's head has cost so far (or in all, once ended):
// an AWS Cloud head's instance, a Batch head's Fargate task or its share of
// an EC2 instance, from RUNNING to the end. 0 when it cannot be priced.
func HeadCost(t *price.Table, r *run.Run, now time.Time) float64 {
	if r.Timeline.Running == nil || r.Backend == nil {
		return 0
	}
	end := now
	if r.Timeline.Completed != nil {
		end = *r.Timeline.Completed
	}
	d := end.Sub(*r.Timeline.Running)
	if d <= 0 {
		return 0
	}
	b := r.Backend
	switch {
	case b.InstanceType != "":
		hourly, _, ok := t.Hourly(b.Region, b.InstanceType, b.Spot)
		if !ok {
			return 0
		}
		return hourly * d.Hours()
	case b.Fargate:
		c, _ := t.FargateCost(b.Region, float64(max(b.HeadCpus, 1)), float64(max(b.HeadMemoryMb, 512)), false, d)
		return c
	case b.Type == run.BackendBatch:
		c, _ := t.TaskCost(b.Region, representativeHead, false, price.Usage{Cpus: float64(max(b.HeadCpus, 1)), MemoryBytes: int64(b.HeadMemoryMb) << 20, Realtime: d})
		return c
	}
	return 0
}
