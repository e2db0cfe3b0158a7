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

// TraceIssuer gives runs their progress reporting (internal/runtoken).
type TraceIssuer interface {
	// Plan decides whether the run reports to ceforge and, when it does,
	// makes its token (kept in memory) and names its secret. Pure: nothing
	// is written.
	Plan(ce *computeenv.ComputeEnv, r *Run, req LaunchRequest) *Trace
	// Store puts the token where the head reads it: a secret in the
	// compute environment's account and region, before the head starts.
	Store(ctx context.Context, ce *computeenv.ComputeEnv, r *Run) error
}

// HostLocator is implemented by launchers whose heads run on shared hosts
// (AWS Batch): it finds the EC2 instance a studio's head runs on, "" when
// it cannot be known (yet).
type HostLocator interface {
	StudioHost(ctx context.Context, ce *computeenv.ComputeEnv, r *Run) (string, error)
}

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// Service implements the run operations of the API, the event handlers and the reconciler.
type Service struct {
	Store     *store.Store
	Launchers map[string]Launcher
	// Trace issues per-run progress tokens; nil: runs do not report.
	Trace   TraceIssuer
	Metrics *metrics.Emitter
	Log     *slog.Logger
	Now     func() time.Time
	// AllowedBuckets are the buckets a run's work directory may name
	// (patterns with '*'); empty allows any.
	AllowedBuckets []string
	// Secrets checks that the pipeline secrets a run names exist in its
	// compute environment's account and region; nil refuses them.
	Secrets computeenv.SecretChecker
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
	return s.launchFrom(ctx, req, createdBy, idempotencyKey, nil)
}

// TraceOffByRequest is the reason of a run launched with traceEnabled false.
const TraceOffByRequest = "turned off for this run (traceEnabled: false)"

// launchFrom is Launch with a hook that adjusts the run before it is
// checked and recorded (relaunch).
func (s *Service) launchFrom(ctx context.Context, req LaunchRequest, createdBy, idempotencyKey string, adjust func(*computeenv.ComputeEnv, *Run) error) (r *Run, created bool, err error) {
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
		Region: ce.Region, AccountID: ce.AccountID(),
		Pipeline: req.Pipeline, Revision: req.Revision, ConfigProfiles: req.ConfigProfiles, ParamsText: req.ParamsText,
		ConfigText: req.ConfigText, PreRunScript: req.PreRunScript, PostRunScript: req.PostRunScript,
		WorkDir: req.WorkDir, Labels: req.Labels, HeadJobCpus: req.HeadJobCpus, HeadJobMemoryMb: req.HeadJobMemoryMb,
		Studio: req.Studio, Status: StatusSubmitted, Timeline: Timeline{Submitted: &now},
		CreatedBy: createdBy, CreatedAt: now, Version: 1, MaxCostUSD: req.MaxCostUSD,
	}
	if r.RunName == "" {
		r.RunName = req.Kind + "-" + r.ID
	}
	if r.WorkDir == "" {
		r.WorkDir = ce.WorkDir
	}
	if adjust != nil {
		if err := adjust(&ce, r); err != nil {
			return nil, false, err
		}
	}
	if err := l.Check(&ce, r); err != nil {
		return nil, false, err
	}
	if err := s.secrets(ctx, &ce, r, req); err != nil {
		return nil, false, err
	}
	return s.launch(ctx, l, &ce, r, req, idempotencyKey)
}

// launch records a checked run, issues its token and starts its head.
func (s *Service) launch(ctx context.Context, l Launcher, ce *computeenv.ComputeEnv, r *Run, req LaunchRequest, idempotencyKey string) (*Run, bool, error) {
	if s.Trace != nil && r.Kind == KindPipeline {
		r.Trace = s.Trace.Plan(ce, r, req)
	}
	createdBy := r.CreatedBy
	// One transaction decides against a concurrent delete: the run is
	// recorded only while the CE is AVAILABLE, and counts as one of its
	// active runs (released by its end), which a delete checks.
	opts := []store.Option{
		store.WithStatusRank(Rank(StatusSubmitted)),
		store.WithCheck(store.StatusIs(store.KindCE, ce.ID, computeenv.StatusAvailable)),
		store.WithCount(store.Count{Kind: store.KindCERuns, ID: ce.ID, Delta: 1}),
	}
	if r.Trace != nil && r.Trace.Enabled {
		// Listed, so the reconciler finds the token's secret to delete
		// after the run ends, even when the launch fails half-way.
		opts = append(opts, store.WithListedGuard(store.KindTraceSecret, r.ID))
	}
	var guardID, fingerprint string
	if idempotencyKey != "" {
		// Keys are per caller: two callers choosing the same key never collide.
		sum := sha256.Sum256([]byte(createdBy + "\n" + idempotencyKey))
		guardID = hex.EncodeToString(sum[:])
		fingerprint = requestFingerprint(req)
		opts = append(opts, store.WithFingerprintedGuard(store.KindIdempotency, guardID, fingerprint))
	}
	err := s.Store.Create(ctx, store.KindRun, r.ID, r, opts...)
	var exists *store.ExistsError
	if errors.As(err, &exists) && exists.Kind == store.KindIdempotency {
		prev, gerr := s.replay(ctx, guardID, fingerprint)
		return prev, false, gerr
	}
	if errors.Is(err, store.ErrCheckFailed) {
		return nil, false, apierr.Conflict("compute_env_not_available", "computeEnvId", "compute environment %s is no longer AVAILABLE (being deleted or changed)", ce.ID)
	}
	if err != nil {
		return nil, false, fmt.Errorf("record run %s: %w", r.ID, err)
	}

	if r.Trace != nil && r.Trace.Enabled {
		if err := s.Trace.Store(ctx, ce, r); err != nil {
			// The run goes on without live progress; it says why (recorded
			// before the head starts, whoever records the head).
			s.log(ctx).Warn("run token not stored; launching without progress reporting", "run_id", r.ID, "error", err.Error())
			r.Trace = &Trace{Enabled: false, Reason: "could not store the run's progress token: " + err.Error()}
			if perr := s.Store.Patch(ctx, store.KindRun, r.ID, map[string]any{"trace": *r.Trace}, 0); perr != nil {
				return nil, false, fmt.Errorf("record run %s without progress reporting: %w", r.ID, perr)
			}
			r.Version++
		}
	}
	backend, logRef, err := l.Launch(ctx, ce, r)
	if r.Trace != nil {
		r.Trace.Token = "" // the head has it (or never will): drop it from memory
	}
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
	// The first recorded head stays: the reconciler may have adopted one
	// meanwhile (found by its run tag); ours is then a duplicate that the
	// reconciler terminates, and the run shows the recorded head.
	err = s.Store.PatchWhen(ctx, store.KindRun, r.ID, set, store.Unset("backend"), refs...)
	if errors.Is(err, store.ErrConflict) {
		s.log(ctx).Warn("head recorded by another writer first", "run_id", r.ID, "ours", backend)
		cur, gerr := s.Get(ctx, r.ID)
		if gerr != nil {
			return nil, false, gerr
		}
		return cur, true, nil
	}
	if err != nil {
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
	// Through a map: members sorted by name, whatever the struct's layout.
	b, _ := json.Marshal(req)
	var m map[string]any
	if json.Unmarshal(b, &m) == nil {
		b, _ = json.Marshal(m)
	}
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

// Connect returns how to reach r (GET /runs/{id}), nil when r is not a
// running studio on a known host. A Batch studio's host is found once,
// from the container instance Batch reported its job on, through the
// platform's HostLocator, and recorded on the run while that container
// instance is still the one recorded; a failed lookup is logged and leaves
// the run without connect information until the next read.
func (s *Service) Connect(ctx context.Context, r *Run) *Connect {
	if r.Kind != KindStudio || r.Status != StatusRunning || r.Backend == nil {
		return nil
	}
	b := r.Backend
	if b.Type == BackendBatch && b.HostInstanceID == "" && b.ContainerInstanceARN != "" {
		if host, err := s.locateHost(ctx, r); err != nil {
			s.log(ctx).Warn("studio host not found", "run_id", r.ID, "container_instance", b.ContainerInstanceARN, "error", err.Error())
		} else {
			b.HostInstanceID = host
		}
	}
	return StudioConnect(r)
}

func (s *Service) locateHost(ctx context.Context, r *Run) (string, error) {
	loc, ok := s.Launchers[r.Platform].(HostLocator)
	if !ok {
		return "", nil
	}
	var ce computeenv.ComputeEnv
	if _, err := s.Store.Get(ctx, store.KindCE, r.ComputeEnvID, &ce); err != nil {
		return "", fmt.Errorf("read compute environment %s: %w", r.ComputeEnvID, err)
	}
	host, err := loc.StudioHost(ctx, &ce, r)
	if err != nil || host == "" {
		return "", err
	}
	err = s.Store.PatchWhen(ctx, store.KindRun, r.ID, map[string]any{"backend.hostInstanceId": host},
		store.Equals("backend.containerInstanceArn", r.Backend.ContainerInstanceARN))
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		// Batch reported another container instance meanwhile (or the run
		// is gone): the host found is not the job's any more.
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("record studio host of run %s: %w", r.ID, err)
	}
	return host, nil
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
	if err := s.cancel(ctx, r, ReasonCancelledByUser); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

func (s *Service) cancel(ctx context.Context, r *Run, reason string) error {
	if !r.CancelRequested {
		// The reason is kept for the end: the head's end arrives later (an
		// event, or the reconciler) and reports it.
		if err := s.Store.Patch(ctx, store.KindRun, r.ID, map[string]any{"cancelRequested": true, "cancelReason": reason}, 0); err != nil {
			return fmt.Errorf("cancel run %s: %w", r.ID, err)
		}
		r.CancelRequested, r.CancelReason = true, reason
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

// ReasonCancelledByUser is the statusReason of runs cancelled through the
// API (computeenv.ReasonDeleted that of runs of a force-deleted CE).
const ReasonCancelledByUser = "cancelled by user"

// CancelledReason is the statusReason of a run that ended after a cancel request.
func (r *Run) CancelledReason() string {
	if r.CancelReason != "" {
		return r.CancelReason
	}
	return ReasonCancelledByUser
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

// AllActive returns every run that has not ended, in any compute environment.
func (s *Service) AllActive(ctx context.Context) ([]Run, error) {
	var out []Run
	for _, st := range ActiveStatuses {
		runs, err := store.All[Run](ctx, s.Store, store.Query{Kind: store.KindRun, Status: st})
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

// Update is a status change observed from an event, the reconciler or the API.
type Update struct {
	Status string
	// At is when it happened (the event's own time); zero means now. It is
	// placed on the run's timeline by Timeline.Place (ordered, positive
	// durations, no far-future times) and is the evidence time that decides
	// between RUNNING and UNKNOWN (see Rank).
	At       time.Time
	Reason   string
	ExitCode *int
	// RunningAt, with a terminal Status, is when the head started running,
	// recorded when the run has no running time yet (its RUNNING event was
	// missed).
	RunningAt time.Time
	// Fields are further attributes to write with the change (json names or
	// dotted paths).
	Fields map[string]any
}

// Transition applies u to r if it moves r forward under the rank rules (one
// conditional write; a run's end also releases its compute environment's
// active-run count in the same transaction). Duplicates, late and stale
// updates are no-ops reported as false. r is updated in memory when the
// change applies.
func (s *Service) Transition(ctx context.Context, r *Run, u Update) (bool, error) {
	rank := Rank(u.Status)
	if rank == 0 {
		return false, fmt.Errorf("transition run %s: unknown status %q", r.ID, u.Status)
	}
	now := s.now()
	at := u.At.UTC()
	if at.IsZero() || at.After(now.Add(MaxClockSkew)) {
		at = now
	}
	set := map[string]any{}
	for k, v := range u.Fields {
		set[k] = v
	}
	tl := r.Timeline
	var ttr *int64
	switch {
	case u.Status == StatusRunning:
		if tl.Running == nil {
			// The first start: a restart (UNKNOWN -> RUNNING) keeps it.
			at = tl.Place(StatusRunning, at, now)
			tl.Running = &at
			set["timeline.running"] = at
			if sub := tl.Submitted; sub != nil {
				ms := at.Sub(*sub).Milliseconds()
				ttr = &ms
				set["timeToRunningMs"] = ms
			}
		}
		if u.Reason == "" && r.StatusReason != "" {
			set["statusReason"] = nil // a reason belongs to the status it explained (UNKNOWN)
		}
	case Terminal(u.Status):
		if tl.Running == nil && !u.RunningAt.IsZero() {
			started := tl.Place(StatusRunning, u.RunningAt, now)
			tl.Running = &started
			set["timeline.running"] = started
			if sub := tl.Submitted; sub != nil {
				ms := started.Sub(*sub).Milliseconds()
				ttr = &ms
				set["timeToRunningMs"] = ms
			}
		}
		at = tl.Place(u.Status, at, now)
		tl.Completed = &at
		set["timeline.completed"] = at
	}
	if u.Reason != "" {
		set["statusReason"] = u.Reason
	}
	if u.ExitCode != nil {
		set["exitCode"] = *u.ExitCode
	}
	m := store.Move{Status: u.Status, Rank: rank, Revisable: Revisable(u.Status), At: at, Set: set}
	if Terminal(u.Status) && r.ComputeEnvID != "" {
		m.Count = &store.Count{Kind: store.KindCERuns, ID: r.ComputeEnvID, Delta: -1}
	}
	ok, err := s.Store.Transition(ctx, store.KindRun, r.ID, m)
	if err == nil && !ok && u.Status == StatusRunning && r.Timeline.Running == nil {
		// Refused: the run may have ended meanwhile (its end applied by a
		// concurrent consumer). When it ran is still worth recording.
		cur, gerr := s.Get(ctx, r.ID)
		if gerr != nil {
			return false, gerr
		}
		if Terminal(cur.Status) {
			*r = *cur
			return false, s.RecordRunning(ctx, r, u.At)
		}
	}
	if err != nil || !ok {
		return ok, err
	}
	r.Status, r.Timeline = u.Status, tl
	if ttr != nil {
		r.TimeToRunningMs = ttr
		if u.Status == StatusRunning {
			s.Metrics.Put(metrics.TimeToRunning, float64(*ttr), metrics.Milliseconds, map[string]string{"Platform": r.Platform})
		}
	}
	switch {
	case u.Reason != "":
		r.StatusReason = u.Reason
	case u.Status == StatusRunning:
		r.StatusReason = ""
	}
	if u.ExitCode != nil {
		r.ExitCode = u.ExitCode
	}
	s.Metrics.Put(metrics.RunStatus, 1, metrics.Count, map[string]string{"Status": u.Status})
	return true, nil
}

// RecordRunning records when an ended run's head started running, learnt
// after its end (a late RUNNING event): the status stays, the time goes on
// the timeline (placed before the end) unless one is there already.
func (s *Service) RecordRunning(ctx context.Context, r *Run, at time.Time) error {
	if r.Timeline.Running != nil || at.IsZero() {
		return nil
	}
	at = r.Timeline.Place(StatusRunning, at, s.now())
	set := map[string]any{"timeline.running": at}
	var ttr *int64
	if sub := r.Timeline.Submitted; sub != nil {
		ms := at.Sub(*sub).Milliseconds()
		ttr = &ms
		set["timeToRunningMs"] = ms
	}
	err := s.Store.PatchWhen(ctx, store.KindRun, r.ID, set, store.Unset("timeline.running"))
	if errors.Is(err, store.ErrConflict) {
		return nil // recorded meanwhile
	}
	if err != nil {
		return fmt.Errorf("record running time of run %s: %w", r.ID, err)
	}
	r.Timeline.Running, r.TimeToRunningMs = &at, ttr
	return nil
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

// Reconcile repairs every active run, whatever its compute environment's
// status: the runs are listed by status (not by CE), grouped by CE, and each
// platform asks AWS for the state of their heads. Runs of a CE being deleted
// (DELETING, DELETED) that no cancel reached yet are cancelled first, with
// the reason computeenv.ReasonDeleted, so they end CANCELLED with it even
// when their head's end event never comes.
func (s *Service) Reconcile(ctx context.Context) error {
	var all []Run
	for _, st := range ActiveStatuses {
		runs, err := store.All[Run](ctx, s.Store, store.Query{Kind: store.KindRun, Status: st})
		if err != nil {
			return fmt.Errorf("list %s runs: %w", st, err)
		}
		all = append(all, runs...)
	}
	byCE := map[string][]Run{}
	var order []string
	for _, r := range all {
		if _, ok := byCE[r.ComputeEnvID]; !ok {
			order = append(order, r.ComputeEnvID)
		}
		byCE[r.ComputeEnvID] = append(byCE[r.ComputeEnvID], r)
	}
	var errs []error
	for _, ceID := range order {
		var ce computeenv.ComputeEnv
		v, err := s.Store.Get(ctx, store.KindCE, ceID, &ce)
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile runs of compute environment %s: %w", ceID, err))
			continue
		}
		ce.Version = v
		active := byCE[ceID]
		if ce.Status == computeenv.StatusDeleting || ce.Status == computeenv.StatusDeleted {
			for i := range active {
				if r := &active[i]; !r.CancelRequested {
					if err := s.cancel(ctx, r, computeenv.ReasonDeleted); err != nil {
						errs = append(errs, err)
					}
				}
			}
		}
		rec, ok := s.Launchers[ce.Platform].(Reconciler)
		if !ok {
			continue
		}
		if err := rec.Reconcile(ctx, &ce, active); err != nil {
			errs = append(errs, fmt.Errorf("reconcile runs of compute environment %s: %w", ce.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Stop cancels a run for a reason of ceforge's own (a cost limit), as a
// user's cancel does: it records the request with that reason and stops the
// head; the head's end (an event, or the reconciler) then records the run
// CANCELLED with the reason. A run whose cancel was requested already is
// left to that.
func (s *Service) Stop(ctx context.Context, r *Run, reason string) error {
	if !r.Active() || r.CancelRequested {
		return nil
	}
	return s.cancel(ctx, r, reason)
}

// RelaunchRequest is the body of POST /runs/{id}/relaunch: the old run's
// request, with each field given here replacing the old one's (a field
// cannot be cleared), and resume to continue the old run's work.
type RelaunchRequest struct {
	// Resume reuses the old run's work directory and Nextflow session
	// (-resume <sessionId>); the cache in the work directory makes it work
	// without the old head.
	Resume bool `json:"resume,omitempty"`
	LaunchSettings
}

// Relaunch starts a new run from an old one's request with the overrides
// of req. With resume, sessionID is the old run's Nextflow session (as its
// trace reported it); the new run keeps the old work directory.
func (s *Service) Relaunch(ctx context.Context, oldID string, req RelaunchRequest, sessionID, createdBy, idempotencyKey string) (*Run, bool, error) {
	old, err := s.Get(ctx, oldID)
	if err != nil {
		return nil, false, err
	}
	if old.Kind != KindPipeline {
		return nil, false, apierr.Conflict("not_relaunchable", "", "run %s is a %s; only pipelines are relaunched", old.ID, old.Kind)
	}
	base := LaunchSettings{
		ComputeEnvID: old.ComputeEnvID, Pipeline: old.Pipeline, Revision: old.Revision,
		ConfigProfiles: old.ConfigProfiles, ParamsText: old.ParamsText, ConfigText: old.ConfigText,
		PreRunScript: old.PreRunScript, PostRunScript: old.PostRunScript, WorkDir: old.WorkDir, Labels: old.Labels,
		HeadJobCpus: old.HeadJobCpus, HeadJobMemoryMb: old.HeadJobMemoryMb, MaxCostUSD: old.MaxCostUSD,
		// The old run's secrets (its compute environment's are added again).
		Secrets: old.Secrets,
	}
	if old.Trace != nil && !old.Trace.Enabled && old.Trace.Reason == TraceOffByRequest {
		f := false
		base.TraceEnabled = &f
	}
	settings := req.over(base)
	settings.WorkDir = old.WorkDir
	if req.Resume {
		if req.WorkDir != "" && req.WorkDir != old.WorkDir {
			return nil, false, apierr.Invalid("workDir", "a resumed run keeps the old run's work directory (%s)", old.WorkDir)
		}
		if sessionID == "" {
			return nil, false, apierr.Conflict("no_session", "resume", "run %s never reported a Nextflow session to resume; relaunch it without resume", old.ID)
		}
	} else if req.WorkDir != "" {
		settings.WorkDir = req.WorkDir
	}
	lr := LaunchRequest{Kind: old.Kind, LaunchSettings: settings}
	return s.launchFrom(ctx, lr, createdBy, idempotencyKey, func(ce *computeenv.ComputeEnv, r *Run) error {
		r.RelaunchOf = old.ID
		if req.Resume {
			if ce.Platform != old.Platform {
				return apierr.Invalid("computeEnvId", "a resumed run must run on the same platform as run %s (%s): each keeps its Nextflow cache in its own place", old.ID, old.Platform)
			}
			r.ResumeSessionID = sessionID
		}
		return nil
	})
}

// secrets sets the pipeline secrets a run gets (its compute environment's
// and its own, each once) after checking they exist where it runs.
func (s *Service) secrets(ctx context.Context, ce *computeenv.ComputeEnv, r *Run, req LaunchRequest) error {
	if r.Kind != KindPipeline {
		return nil
	}
	named := computeenv.ListedSecrets("secrets", req.Secrets)
	if len(named)+len(ce.Named()) == 0 {
		return nil
	}
	if s.Secrets == nil {
		return apierr.Invalid("secrets", "this deployment keeps no pipeline secrets")
	}
	// The compute environment's were there when it was created; one
	// deleted since is a 400 on the launch, naming computeEnvId.
	for _, ns := range ce.Named() {
		named = append(named, computeenv.NamedSecret{Field: "computeEnvId", Name: ns.Name})
	}
	if err := s.Secrets.Check(ctx, ce, named); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, n := range append(append([]string(nil), ce.Secrets...), req.Secrets...) {
		if !seen[n] {
			seen[n] = true
			r.Secrets = append(r.Secrets, n)
		}
	}
	if len(r.Secrets) > computeenv.MaxSecrets {
		return apierr.Invalid("secrets", "a run gets at most %d secrets with its compute environment's", computeenv.MaxSecrets)
	}
	return nil
}
