// Package reconcile is the level-triggered half of the reliability model:
// on a schedule it advances compute environments that are being created or
// deleted, and asks each platform to repair runs whose events were missed.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/progress"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
)

// Reconciler runs one pass at a time.
type Reconciler struct {
	CEs  *computeenv.Service
	Runs *run.Service
	// Progress applies what runs' traces recorded (begin, complete, cost
	// limits) that a lost hand-off missed; nil skips it.
	Progress *progress.Applier
	// Tokens deletes the token secrets of ended runs; nil skips it.
	Tokens interface {
		Once(ctx context.Context) (int, error)
	}
	Log *slog.Logger
}

// Once runs one reconcile pass. Errors of single items are collected, not
// fatal: one broken CE must not stop the others.
func (r *Reconciler) Once(ctx context.Context) error {
	var errs []error
	unstable, err := r.CEs.Unstable(ctx)
	if err != nil {
		return fmt.Errorf("list unstable compute environments: %w", err)
	}
	for _, id := range unstable {
		if err := r.CEs.Advance(ctx, id); err != nil && !errors.Is(err, store.ErrConflict) {
			// A conflict means someone else advanced it meanwhile: fine.
			errs = append(errs, fmt.Errorf("advance compute environment %s: %w", id, err))
		}
	}
	// Drift: what CEs in service rely on outside ceforge (queues, hosts).
	if err := r.CEs.CheckInService(ctx); err != nil {
		errs = append(errs, err)
	}
	// Every active run, whatever its CE's status: runs of a CE being
	// deleted, or that errored, are repaired until they end.
	if err := r.Runs.Reconcile(ctx); err != nil {
		errs = append(errs, err)
	}
	// Roles forged before ceforge set permissions boundaries get one.
	if err := r.CEs.BoundRoles(ctx); err != nil {
		errs = append(errs, err)
	}
	if r.Progress != nil {
		active, err := r.Runs.AllActive(ctx)
		if err == nil {
			err = r.Progress.ApplyActive(ctx, active)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("apply run progress: %w", err))
		}
	}
	if r.Tokens != nil {
		if _, err := r.Tokens.Once(ctx); err != nil {
			errs = append(errs, fmt.Errorf("delete ended runs' token secrets: %w", err))
		}
	}
	err = errors.Join(errs...)
	if err != nil && r.Log != nil {
		r.Log.Warn("reconcile pass had errors", "error", err.Error())
	}
	return err
}
