package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/logging"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/store"
)

// Launcher is what a platform implements to run heads.
type Launcher interface {
	// Check validates platform-specific run options against the CE before
	// anything is written (*apierr.Error naming the field).
	Check(ce *computeenv.ComputeEnv, r *Run) error
	// Launch starts the run's head and returns where it runs and where its
	// log goes. It must be idempotent per run id (a retry never starts a
	// second head).
	Launch(ctx context.Context, ce *computeenv.ComputeEnv, r *Run) (Backend, *LogRef, error)
	// Cancel stops the run's head and its tasks.
	Cancel(ctx context.Context, ce *computeenv.ComputeEnv, r *Run) error
}

// Reconciler is implemented by launchers that can repair runs whose events
// were missed, by asking AWS for the state of their heads.
type Reconciler interface {
	Reconcile(ctx context.Context, ce *computeenv.ComputeEnv, active []Run) error
}

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// Service implements the run operations of the API, the event handlers and the reconciler.
type Service struct {
	Store     *store.Store
	Launchers map[string]Launcher
	Metrics   *metrics.Emitter
	Log       *slog.Logger
	Now       func() time.Time
	// AllowedBuckets are the buckets a run's work directory may name
	// (patterns with '*'); empty allows any.
	AllowedBuckets []string
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// log returns the request's logger (with its request id) when there is one.
func (s *Service) log(ctx context.Context) *slog.Logger { return logging.From(ctx, s.Log) }

// Launch validates and records a run, then starts its head. With an
// idempotency key, a repeated request returns the first run (created=false).
func (s *Service) Launch(ctx context.Context, req LaunchRequest, createdBy, idempotencyKey string) (r *Run, created bool, err error) {
	if idempotencyKey != "" && !ValidIdempotencyKey(idempotencyKey) {
		return nil, false, apierr.BadRequest("invalid_header", "Idempotency-Key", "Idempotency-Key must be 1-%d printable ASCII characters", MaxIdempotencyKeyLen)
	}
	if err := req.Validate(); err != nil {
		return nil, false, err
	}
	if err := computeenv.CheckBucket("workDir", req.WorkDir, s.AllowedBuckets); err != nil {
		return nil, false, err
	}
	if !ids.Valid(req.ComputeEnvID) {
		return nil, false, apierr.Invalid("computeEnvId", "compute environment %q not found", req.ComputeEnvID)
	}
	var ce computeenv.ComputeEnv
	if _, err := s.Store.Get(ctx, store.KindCE, req.ComputeEnvID, &ce); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, apierr.Invalid("computeEnvId", "compute environment %q not found", req.ComputeEnvID)
		}
		return nil, false, err
	}
	if ce.Status != computeenv.StatusAvailable {
		return nil, false, apierr.Conflict("compute_env_not_available", "computeEnvId", "compute environment %s is %s, not AVAILABLE", ce.ID, ce.Status)
	}
	l, ok := s.Launchers[ce.Platform]
	if !ok {
		return nil, false, apierr.NotImplemented("runs on platform %q are not implemented yet", ce.Platform)
	}
	now := s.now()
	r = &Run{
		ID: ids.New(), Kind: req.Kind, ComputeEnvID: ce.ID, Platform: ce.Platform, RunName: req.RunName,
		Pipeline: req.Pipeline, Revision: req.Revision, ConfigProfiles: req.ConfigProfiles, ParamsText: req.ParamsText,
		ConfigText: req.ConfigText, PreRunScript: req.PreRunScript, PostRunScript: req.PostRunScript,
		WorkDir: req.WorkDir, Labels: req.Labels, HeadJobCpus: req.HeadJobCpus, HeadJobMemoryMb: req.HeadJobMemoryMb,
		Studio: req.Studio, Status: StatusSubmitted, Timeline: Timeline{Submitted: &now},
		CreatedBy: createdBy, CreatedAt: now, Version: 1,
	}
	if r.RunName == "" {
		r.RunName = req.Kind + "-" + r.ID
	}
	if r.WorkDir == "" {
		r.WorkDir = ce.WorkDir
	}
	if err := l.Check(&ce, r); err != nil {
		return nil, false, err
	}

	opts := []store.Option{store.WithStatusRank(Rank(StatusSubmitted))}
	var guardID, fingerprint string
	if idempotencyKey != "" {
		// Keys are per caller: two callers choosing the same key never collide.
		sum := sha256.Sum256([]byte(createdBy + "\n" + idempotencyKey))
		guardID = hex.EncodeToString(sum[:])
		fingerprint = requestFingerprint(req)
		opts = append(opts, store.WithFingerprintedGuard(store.KindIdempotency, guardID, fingerprint))
	}
	err = s.Store.Create(ctx, store.KindRun, r.ID, r, opts...)
	var exists *store.ExistsError
	if errors.As(err, &exists) && exists.Kind == store.KindIdempotency {
		prev, gerr := s.replay(ctx, guardID, fingerprint)
		return prev, false, gerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("record run %s: %w", r.ID, err)
	}

	backend, logRef, err := l.Launch(ctx, &ce, r)
	if err != nil {
		reason := LaunchFailureReason(err)
		s.log(ctx).Warn("launch failed", "run_id", r.ID, "ce_id", ce.ID, "error", err.Error())
		if _, terr := s.Transition(ctx, r, Update{Status: StatusFailed, At: s.now(), Reason: reason}); terr != nil {
			return nil, false, errors.Join(fmt.Errorf("launch run %s: %w", r.ID, err), terr)
		}
		return r, true, nil
	}
	r.Backend, r.Logs = &backend, logRef
	set := map[string]any{"backend": backend}
	if logRef != nil {
		set["logs"] = *logRef
	}
	var refs []store.Ref
	if backend.InstanceID != "" {
		refs = append(refs, store.Ref{Kind: store.KindInstance, ID: backend.InstanceID})
	}
	if backend.JobID != "" {
		refs = append(refs, store.Ref{Kind: store.KindJob, ID: backend.JobID})
	}
	if err := s.Store.PatchWithRefs(ctx, store.KindRun, r.ID, set, 0, refs...); err != nil {
		// The head runs but is not recorded: the reconciler adopts it by its run tag.
		return nil, false, fmt.Errorf("record backend of run %s: %w", r.ID, err)
	}
	r.Version++
	return r, true, nil
}

// LaunchFailureReason turns a launch error into a stable statusReason.
func LaunchFailureReason(err error) string {
	if e, ok := apierr.As(err); ok {
		return "launch failed: " + e.Message
	}
	return "launch failed: " + err.Error()
}

// replay returns the run an idempotency key first launched, if this request
// is the same one (a key written before fingerprints were kept is trusted).
func (s *Service) replay(ctx context.Context, guardID, fingerprint string) (*Run, error) {
	id, prev, err := s.Store.GetGuard(ctx, store.KindIdempotency, guardID)
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	if prev != "" && prev != fingerprint {
		return nil, &apierr.Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused", Field: "Idempotency-Key",
			Message: fmt.Sprintf("this Idempotency-Key was used for a different request (run %s); use a new key for a new launch", id)}
	}
	return s.Get(ctx, id)
}

// requestFingerprint is a digest of the canonical form of a launch request:
// its fields re-encoded in a fixed order (maps sorted), so the same request
// sent with other spacing or member order matches.
func requestFingerprint(req LaunchRequest) string {
	b, _ := json.Marshal(req)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Get returns a run.
func (s *Service) Get(ctx context.Context, id string) (*Run, error) {
	if !ids.Valid(id) {
		return nil, apierr.NotFound("run %q not found", id)
	}
	var r Run
	v, err := s.Store.Get(ctx, store.KindRun, id, &r)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("run %q not found", id)
	}
	if err != nil {
		return nil, err
	}
	r.Version = v
	return &r, nil
}

// ListQuery filters GET /runs.
type ListQuery struct {
	ComputeEnvID string
	Status       string
	Cursor       string
	Limit        int
}

// List returns a page of runs, newest first.
func (s *Service) List(ctx context.Context, q ListQuery) ([]Run, string, error) {
	if q.Status != "" && Rank(q.Status) == 0 {
		return nil, "", apierr.Invalid("status", "unknown run status %q", q.Status)
	}
	page, err := s.Store.List(ctx, store.Query{Kind: store.KindRun, Status: q.Status, ComputeEnvID: q.ComputeEnvID, Cursor: q.Cursor, Limit: q.Limit})
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", apierr.Invalid("cursor", "the cursor is not one this API returned")
	}
	if err != nil {
		return nil, "", err
	}
	out := []Run{}
	if err := page.Decode(&out); err != nil {
		return nil, "", fmt.Errorf("decode runs: %w", err)
	}
	return out, page.NextCursor, nil
}

// Cancel requests cancellation: it records the request (so the head's end
// is reported as CANCELLED) and asks the platform to stop the head.
func (s *Service) Cancel(ctx context.Context, id string) (*Run, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if Terminal(r.Status) {
		if r.Status == StatusCancelled {
			return r, nil
		}
		return nil, apierr.Conflict("run_finished", "", "run %s already ended with status %s", id, r.Status)
	}
	if err := s.cancel(ctx, r, "cancelled by user"); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

func (s *Service) cancel(ctx context.Context, r *Run, reason string) error {
	if !r.CancelRequested {
		if err := s.Store.Patch(ctx, store.KindRun, r.ID, map[string]any{"cancelRequested": true}, 0); err != nil {
			return fmt.Errorf("cancel run %s: %w", r.ID, err)
		}
		r.CancelRequested = true
	}
	l, ok := s.Launchers[r.Platform]
	if !ok && r.Backend != nil {
		return apierr.NotImplemented("runs on platform %q are not implemented yet", r.Platform)
	}
	if ok {
		var ce computeenv.ComputeEnv
		if _, err := s.Store.Get(ctx, store.KindCE, r.ComputeEnvID, &ce); err != nil {
			return fmt.Errorf("cancel run %s: read compute environment: %w", r.ID, err)
		}
		// Without a recorded backend the platform still looks for a head
		// started just before a crash (by its run tag) and stops it.
		if err := l.Cancel(ctx, &ce, r); err != nil {
			return fmt.Errorf("cancel run %s: %w", r.ID, err)
		}
	}
	if r.Backend == nil {
		// No recorded head, so no event will end the run: it ends here.
		_, err := s.Transition(ctx, r, Update{Status: StatusCancelled, At: s.now(), Reason: reason})
		return err
	}
	return nil
}

// ActiveRuns returns the ids of the CE's runs that have not ended.
func (s *Service) ActiveRuns(ctx context.Context, ceID string) ([]string, error) {
	runs, err := s.activeRuns(ctx, ceID)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out, nil
}

// ActiveRunsOf returns the CE's runs that have not ended.
func (s *Service) ActiveRunsOf(ctx context.Context, ceID string) ([]Run, error) {
	return s.activeRuns(ctx, ceID)
}

func (s *Service) activeRuns(ctx context.Context, ceID string) ([]Run, error) {
	var out []Run
	for _, st := range ActiveStatuses {
		runs, err := store.All[Run](ctx, s.Store, store.Query{Kind: store.KindRun, Status: st, ComputeEnvID: ceID})
		if err != nil {
			return nil, fmt.Errorf("list active runs: %w", err)
		}
		out = append(out, runs...)
	}
	return out, nil
}

// CancelRuns cancels every active run of a CE (force delete).
func (s *Service) CancelRuns(ctx context.Context, ceID, reason string) error {
	runs, err := s.activeRuns(ctx, ceID)
	if err != nil {
		return err
	}
	var errs []error
	for i := range runs {
		if err := s.cancel(ctx, &runs[i], reason); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Update is a status change observed from an event or the reconciler.
type Update struct {
	Status   string
	At       time.Time // when it happened (the event's time)
	Reason   string
	ExitCode *int
	// Fields are further attributes to write with the change (json names or dotted paths).
	Fields map[string]any
}

// Transition applies u to r if it moves r forward (one conditional write);
// duplicates and late updates are no-ops reported as false. r is updated
// in memory when the change applies.
func (s *Service) Transition(ctx context.Context, r *Run, u Update) (bool, error) {
	rank := Rank(u.Status)
	if rank == 0 {
		return false, fmt.Errorf("transition run %s: unknown status %q", r.ID, u.Status)
	}
	at := u.At.UTC()
	if at.IsZero() {
		at = s.now()
	}
	set := map[string]any{}
	for k, v := range u.Fields {
		set[k] = v
	}
	var ttr *int64
	switch {
	case u.Status == StatusRunning:
		set["timeline.running"] = at
		if sub := r.Timeline.Submitted; sub != nil {
			ms := at.Sub(*sub).Milliseconds()
			if ms < 0 {
				ms = 0
			}
			ttr = &ms
			set["timeToRunningMs"] = ms
		}
	case Terminal(u.Status):
		set["timeline.completed"] = at
	}
	if u.Reason != "" {
		set["statusReason"] = u.Reason
	}
	if u.ExitCode != nil {
		set["exitCode"] = *u.ExitCode
	}
	ok, err := s.Store.Transition(ctx, store.KindRun, r.ID, u.Status, rank, set)
	if err != nil || !ok {
		return ok, err
	}
	r.Status = u.Status
	switch {
	case u.Status == StatusRunning:
		r.Timeline.Running, r.TimeToRunningMs = &at, ttr
		if ttr != nil {
			s.Metrics.Put(metrics.TimeToRunning, float64(*ttr), metrics.Milliseconds, map[string]string{"Platform": r.Platform})
		}
	case Terminal(u.Status):
		r.Timeline.Completed = &at
	}
	if u.Reason != "" {
		r.StatusReason = u.Reason
	}
	if u.ExitCode != nil {
		r.ExitCode = u.ExitCode
	}
	s.Metrics.Put(metrics.RunStatus, 1, metrics.Count, map[string]string{"Status": u.Status})
	return true, nil
}

// ByBackend returns the run whose head is the given EC2 instance or Batch
// job (kind store.KindInstance or store.KindJob), or apierr-free
// store.ErrNotFound when it is not ours: one read decides.
func (s *Service) ByBackend(ctx context.Context, kind store.Kind, backendID string) (*Run, error) {
	id, err := s.Store.GetRef(ctx, kind, backendID)
	if err != nil {
		return nil, err
	}
	var r Run
	v, err := s.Store.Get(ctx, store.KindRun, id, &r)
	if err != nil {
		return nil, err
	}
	r.Version = v
	return &r, nil
}

// Reconcile asks each platform to repair the active runs of every CE.
func (s *Service) Reconcile(ctx context.Context, ces []computeenv.ComputeEnv) error {
	var errs []error
	for i := range ces {
		ce := &ces[i]
		rec, ok := s.Launchers[ce.Platform].(Reconciler)
		if !ok {
			continue
		}
		active, err := s.activeRuns(ctx, ce.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(active) == 0 {
			continue
		}
		if err := rec.Reconcile(ctx, ce, active); err != nil {
			errs = append(errs, fmt.Errorf("reconcile runs of compute environment %s: %w", ce.ID, err))
		}
	}
	return errors.Join(errs...)
}
