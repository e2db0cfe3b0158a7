// Package sweep finds and removes what ceforge left behind: unattached EBS
// volumes, instances that outlived their run, Batch jobs whose run ended.
//
// Rules (see the README of the package for the reasoning):
//   - Nothing is deleted without proof of ownership: ceforge's tags naming a
//     compute environment this deployment knows (a CE record in any
//     status). Anything that only looks like ours is reported, never touched.
//   - Proof is per account and region: a CE id counts only in the account
//     and region of that CE's record.
//   - Every sweep lists again; nothing is remembered between sweeps except
//     the first sighting of an orphan volume, a record in ceforge's own
//     table (a conditional write), never a tag anyone could set. A sweep
//     stopped by its deadline or breaker loses nothing: the next one
//     resumes by listing.
//   - Calls go through client-side token buckets just under EC2's account
//     buckets; throttles halve the rate (AIMD) and are retried, never
//     reported as failures.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/store"
)

// Options tune a Sweeper. Zero values take the defaults.
type Options struct {
	// Grace is how long an orphan must stay orphaned before it goes
	// (default 30m): a volume must be seen available in two sweeps at
	// least Grace apart; an instance's or job's run must have ended Grace ago.
	Grace time.Duration
	// PricePerGiBMonth estimates savings (default gp3, $0.08).
	PricePerGiBMonth float64
	// MaxDeletions is the circuit breaker: at most this many deletions and
	// terminations per sweep (default 4000, about what EC2's DeleteVolume
	// bucket allows in a 15-minute Lambda).
	MaxDeletions int
	// DeadlineMargin: no deletion starts later than this before the
	// context's deadline (default 30s), leaving time to write the report.
	DeadlineMargin time.Duration
	// Prefix of ceforge's resource names (job queues), default "ceforge-".
	Prefix string
	// Limits are the client-side buckets (default DefaultLimits).
	Limits *Limits
	// Workers delete concurrently (default 4); the limiter sets the pace,
	// workers only hide each call's latency.
	Workers int
	// MaxRunHours is the default maximum lifetime of a run's instance when
	// its compute environment sets none (default 168).
	MaxRunHours int
}

func (o Options) withDefaults() Options {
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.PricePerGiBMonth <= 0 {
		o.PricePerGiBMonth = DefaultGP3Price
	}
	if o.MaxDeletions <= 0 {
		o.MaxDeletions = DefaultMaxDelete
	}
	if o.DeadlineMargin <= 0 {
		o.DeadlineMargin = DefaultMargin
	}
	if o.Prefix == "" {
		o.Prefix = "ceforge-"
	}
	if o.Limits == nil {
		l := DefaultLimits()
		o.Limits = &l
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.MaxRunHours <= 0 {
		o.MaxRunHours = DefaultMaxHours
	}
	return o
}

// Sweeper runs sweeps and keeps their reports.
type Sweeper struct {
	Store   *store.Store
	Clients Clients
	Options Options
	Log     *slog.Logger
	Metrics *metrics.Emitter
	// Now is the clock (tests move it past the grace period).
	Now func() time.Time
	// Registered, when set, says whether a target's credentials are still
	// registered (credential.Service.Registered, the check every
	// AssumeRole makes): an account whose credentials were deleted (after
	// its compute environments) can no longer be assumed, so it is
	// reported skipped, not swept and failed on every time.
	Registered awsclient.Registry
}

func (s *Sweeper) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Sweeper) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Queue writes a QUEUED report for a sweep to run elsewhere (the sweeper
// function, or a goroutine of the local server).
func (s *Sweeper) Queue(ctx context.Context, dryRun bool, trigger, requestedBy string) (*Report, error) {
	r := &Report{
		ID: ids.New(), Status: StatusQueued, Trigger: trigger, DryRun: dryRun, RequestedBy: requestedBy,
		CreatedAt: s.now(), Skipped: []Skip{}, Deleted: []Item{}, Errors: []string{},
		PricePerGiBMonth: s.Options.withDefaults().PricePerGiBMonth,
	}
	if err := s.Store.Create(ctx, store.KindSweep, r.ID, r); err != nil {
		return nil, fmt.Errorf("create sweep record: %w", err)
	}
	r.Version = 1
	return r, nil
}

// Get returns a sweep report.
func (s *Sweeper) Get(ctx context.Context, id string) (*Report, error) {
	if !ids.Valid(id) {
		return nil, apierr.NotFound("sweep %q not found", id)
	}
	var r Report
	v, err := s.Store.Get(ctx, store.KindSweep, id, &r)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("sweep %q not found", id)
	}
	if err != nil {
		return nil, err
	}
	r.Version = v
	return &r, nil
}

// List returns a page of reports, newest first.
func (s *Sweeper) List(ctx context.Context, cursor string, limit int) ([]Report, string, error) {
	page, err := s.Store.List(ctx, store.Query{Kind: store.KindSweep, Cursor: cursor, Limit: limit})
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", apierr.Invalid("cursor", "the cursor is not one this API returned")
	}
	if err != nil {
		return nil, "", err
	}
	out := []Report{}
	if err := page.Decode(&out); err != nil {
		return nil, "", fmt.Errorf("decode sweeps: %w", err)
	}
	return out, page.NextCursor, nil
}

// Sweep records and runs one sweep now (the schedule's entry point).
func (s *Sweeper) Sweep(ctx context.Context, dryRun bool, trigger string) (*Report, error) {
	r, err := s.Queue(ctx, dryRun, trigger, "")
	if err != nil {
		return nil, err
	}
	return s.Run(ctx, r.ID)
}

// Run runs the queued sweep id and writes its report. It returns the
// report even when the sweep stopped early; an error means the report
// could not be read or written.
func (s *Sweeper) Run(ctx context.Context, id string) (*Report, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Status == StatusRunning && r.StartedAt != nil && s.now().Sub(*r.StartedAt) > abandonedAfter {
		// The invocation that ran it died without a report (Lambda's
		// retry of a crashed async invocation lands here).
		s.markFailed(ctx, r, "abandoned: the sweep's invocation ended without writing its report")
		return r, nil
	}
	if r.Status != StatusQueued {
		// At-least-once invocation: a sweep runs once.
		return r, nil
	}
	started := s.now()
	r.Status, r.StartedAt = StatusRunning, &started
	if r.Version, err = s.Store.Save(ctx, store.KindSweep, r.ID, r, r.Version); err != nil {
		return nil, fmt.Errorf("start sweep %s: %w", id, err)
	}
	s.execute(ctx, r)
	finished := s.now()
	r.FinishedAt = &finished
	// The report must be written even if the sweep's own context ran out.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if r.Version, err = s.Store.Save(wctx, store.KindSweep, r.ID, r, r.Version); err != nil {
		return r, fmt.Errorf("write sweep report %s: %w", id, err)
	}
	s.emit(r)
	s.log().Info("sweep finished", "sweep_id", r.ID, "status", r.Status, "stop_reason", r.StopReason, "dry_run", r.DryRun,
		"volumes_deleted", r.Volumes.Deleted, "instances_terminated", r.Instances.Deleted, "jobs_terminated", r.Jobs.Deleted,
		"gib_freed", r.GiBFreed, "throttles", r.Throttles, "failures", r.Volumes.Failed+r.Instances.Failed+r.Jobs.Failed)
	return r, nil
}

func (s *Sweeper) emit(r *Report) {
	if r.DryRun {
		return
	}
	s.Metrics.Put(metrics.SweepItemsDeleted, float64(r.Volumes.Deleted), metrics.Count, map[string]string{"ResourceKind": KindVolume})
	s.Metrics.Put(metrics.SweepItemsDeleted, float64(r.Instances.Deleted), metrics.Count, map[string]string{"ResourceKind": KindInstance})
	s.Metrics.Put(metrics.SweepItemsDeleted, float64(r.Jobs.Deleted), metrics.Count, map[string]string{"ResourceKind": KindJob})
	s.Metrics.Put(metrics.SweepDollarsSaved, r.DollarsPerMonthSaved, metrics.None, nil)
}

// abandonedAfter is when a RUNNING sweep is certainly dead: longer than a
// Lambda invocation can last.
const abandonedAfter = 20 * time.Minute

// errStop ends a sweep early; its message is the report's stop reason.
type errStop struct{ reason string }

func (e *errStop) Error() string { return e.reason }

// sweepRun is the state of one sweep.
type sweepRun struct {
	s      *Sweeper
	o      Options
	r      *Report
	t      *tally
	now    time.Time
	stopAt time.Time // no deletion starts after this (zero: no deadline)
	ces    map[string]*computeenv.ComputeEnv
	// sightings are the first sightings of orphan volumes (table records),
	// by sighting id; read once per sweep.
	sightings map[string]time.Time
	sightMu   sync.Mutex

	stopMu sync.Mutex
	stop   *errStop
	// inflight counts items handed to workers and not finished, so the
	// breaker counts deletions that are under way.
	inflight atomic.Int64
}

// execute fills r; it never fails as a whole: problems end up in the report.
func (s *Sweeper) execute(ctx context.Context, r *Report) {
	o := s.Options.withDefaults()
	r.PricePerGiBMonth = o.PricePerGiBMonth
	ru := &sweepRun{s: s, o: o, r: r, t: newTally(r), now: s.now()}
	if dl, ok := ctx.Deadline(); ok {
		ru.stopAt = dl.Add(-o.DeadlineMargin)
	}
	defer ru.t.finish(o.PricePerGiBMonth)

	targets, err := ru.loadComputeEnvs(ctx)
	if err != nil {
		r.Status, r.StopReason = StatusFailed, "list compute environments: "+err.Error()
		return
	}
	if ru.sightings, err = loadSightings(ctx, s.Store); err != nil {
		r.Status, r.StopReason = StatusFailed, "read first sightings: "+err.Error()
		return
	}
	targets = ru.assumable(ctx, targets)
	r.Targets = len(targets)
	// Work stops at the margin before the deadline; the report is written after.
	wctx := ctx
	if !ru.stopAt.IsZero() {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, ru.stopAt)
		defer cancel()
	}
	for _, tg := range targets {
		if ru.stopped() != nil {
			break
		}
		ec2c, batchc, err := s.Clients(wctx, tg)
		if err != nil {
			ru.t.listErr(fmt.Errorf("clients for %s %s: %w", tg.Region, tg.Credentials.RoleARN, err))
			continue
		}
		tr := &targetRun{sweepRun: ru, target: tg, ec2: ec2c, batch: batchc, lim: newLimiters(*o.Limits)}
		tr.sweep(wctx)
		r.Throttles += tr.lim.throttles()
	}
	switch stop := ru.stopped(); {
	case stop != nil:
		r.Status, r.StopReason = StatusIncomplete, stop.reason
	case ctx.Err() != nil || wctx.Err() != nil:
		r.Status, r.StopReason = StatusIncomplete, "deadline"
	case r.Volumes.Failed+r.Instances.Failed+r.Jobs.Failed > 0 || len(r.Errors) > 0:
		r.Status, r.StopReason = StatusIncomplete, "errors"
	default:
		r.Status = StatusSucceeded
	}
}

// loadComputeEnvs reads every CE record (any status: orphans of deleted
// CEs are exactly what the sweeper is for) and groups them by account and region.
func (ru *sweepRun) loadComputeEnvs(ctx context.Context) ([]Target, error) {
	ru.ces = map[string]*computeenv.ComputeEnv{}
	seen := map[Target]bool{}
	var targets []Target
	cursor := ""
	for {
		page, err := ru.s.Store.List(ctx, store.Query{Kind: store.KindCE, Cursor: cursor, Limit: store.MaxPageSize})
		if err != nil {
			return nil, err
		}
		var ces []computeenv.ComputeEnv
		if err := page.Decode(&ces); err != nil {
			return nil, fmt.Errorf("decode compute environments: %w", err)
		}
		for i := range ces {
			ce := &ces[i]
			ru.ces[ce.ID] = ce
			tg := targetOf(ce)
			if !seen[tg] {
				seen[tg] = true
				targets = append(targets, tg)
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	sort.Slice(targets, func(i, j int) bool {
		a, b := targets[i], targets[j]
		if a.Region != b.Region {
			return a.Region < b.Region
		}
		return a.Credentials.RoleARN < b.Credentials.RoleARN
	})
	return targets, nil
}

// assumable leaves out the targets whose credentials are no longer
// registered, reporting each (account/region) as skipped.
func (ru *sweepRun) assumable(ctx context.Context, targets []Target) []Target {
	if ru.s.Registered == nil {
		return targets
	}
	out := targets[:0]
	for _, tg := range targets {
		if tg.Credentials.RoleARN != "" {
			if err := ru.s.Registered(ctx, tg.Credentials); errors.Is(err, credential.ErrNotRegistered) {
				ru.t.skip(KindAccount, ReasonCredentialsDeleted, tg.Account()+"/"+tg.Region)
				continue
			}
		}
		out = append(out, tg)
	}
	return out
}

// targetOf is the account and region a CE's resources live in.
func targetOf(ce *computeenv.ComputeEnv) Target {
	tg := Target{Region: ce.Region}
	if ce.Credentials != nil {
		tg.Credentials = awsclient.Credentials{RoleARN: ce.Credentials.RoleARN, ExternalID: ce.Credentials.ExternalID}
	}
	return tg
}

// Account is the target's account as ceforge knows it: the account of its
// role ARN, "self" for the control plane's own credentials.
func (t Target) Account() string {
	if t.Credentials.RoleARN == "" {
		return "self"
	}
	parts := strings.Split(t.Credentials.RoleARN, ":")
	if len(parts) < 5 || parts[4] == "" {
		return "self"
	}
	return parts[4]
}

// ownedHere returns the skip reason when ceID does not prove ownership in
// this target ("" when it does): the CE must be known, and its record must
// name this account and region. A us-east-1 CE's id on a us-west-2 volume,
// or one account's CE id in another account, proves nothing.
func (tr *targetRun) ownedHere(ceID string) string {
	ce := tr.ces[ceID]
	if ce == nil {
		return ReasonUnknownCE
	}
	ct := targetOf(ce)
	if ct.Region != tr.target.Region || ct.Account() != tr.target.Account() {
		return ReasonElsewhere
	}
	return ""
}

// halt stops the sweep (first reason wins).
func (ru *sweepRun) halt(reason string) {
	ru.stopMu.Lock()
	defer ru.stopMu.Unlock()
	if ru.stop == nil {
		ru.stop = &errStop{reason}
		ru.s.log().Warn("sweep stopping early", "sweep_id", ru.r.ID, "reason", reason)
	}
}

func (ru *sweepRun) stopped() *errStop {
	ru.stopMu.Lock()
	defer ru.stopMu.Unlock()
	return ru.stop
}

// mayDelete checks, before each deletion, the deadline and the breaker.
func (ru *sweepRun) mayDelete() bool {
	if ru.stopped() != nil {
		return false
	}
	if !ru.stopAt.IsZero() && time.Now().After(ru.stopAt) {
		ru.halt("deadline")
		return false
	}
	if ru.t.deletions()+int(ru.inflight.Load()) >= ru.o.MaxDeletions {
		ru.halt(fmt.Sprintf("circuit_breaker: max %d deletions per sweep", ru.o.MaxDeletions))
		return false
	}
	if ru.t.spike() {
		ru.halt("circuit_breaker: error spike")
		return false
	}
	return true
}

// limiters are one target's client-side buckets (EC2's buckets are per
// account and region).
type limiters struct {
	deleteVolume, terminate, describe, batch *aimd
}

func newLimiters(l Limits) *limiters {
	return &limiters{
		deleteVolume: newAIMD(l.DeleteVolume), terminate: newAIMD(l.TerminateInstances),
		describe: newAIMD(l.Describe), batch: newAIMD(l.Batch),
	}
}

func (l *limiters) throttles() int {
	return l.deleteVolume.Throttles() + l.terminate.Throttles() + l.describe.Throttles() + l.batch.Throttles()
}

// maxThrottleRetries bounds the retries of one call: past it the account is
// saturated by someone else, and the item is left for the next sweep.
const maxThrottleRetries = 30

// callTimeout bounds one call once started; it is below DefaultMargin so
// calls in flight at the deadline finish before the report is written.
const callTimeout = 20 * time.Second

// call runs fn under lim, retrying throttles (each one halves the rate).
// A call still throttled after maxThrottleRetries returns the throttle.
// ctx ending stops the waiting, never a call in flight: a deletion cut off
// mid-call would happen without the sweep knowing it.
func call(ctx context.Context, lim *aimd, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		if err := lim.Wait(ctx); err != nil {
			// The limiter refuses early when the wait would pass the
			// deadline: that is the deadline too.
			return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
		err := fn(cctx)
		cancel()
		if err == nil {
			lim.Succeeded()
			return nil
		}
		if !IsThrottle(err) || attempt >= maxThrottleRetries {
			return err
		}
		lim.Throttled()
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// targetRun sweeps one account and region.
type targetRun struct {
	*sweepRun
	target Target
	ec2    EC2API
	batch  BatchAPI
	lim    *limiters
	// deletedVols are the volumes this target's sweep deleted (under sightMu).
	deletedVols []string
}

// sweep runs the three kinds: instances first (terminating one frees its
// volumes), then jobs, then volumes (the bulk, stopped by the deadline if
// anything is).
func (tr *targetRun) sweep(ctx context.Context) {
	for _, phase := range []func(context.Context) error{tr.instances, tr.jobs, tr.volumes} {
		if tr.stopped() != nil || ctx.Err() != nil {
			return
		}
		if err := phase(ctx); err != nil && ctx.Err() == nil && !isContextErr(err) {
			tr.t.listErr(fmt.Errorf("%s: %w", tr.target.Region, err))
		}
	}
}

// parallel runs fn for each item with the configured workers, in order of
// the slice, until mayDelete says stop; items not attempted are reported.
func (tr *targetRun) parallel(ctx context.Context, kind string, n int, id func(int) string, fn func(context.Context, int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < tr.o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(ctx, i)
				tr.inflight.Add(-1)
			}
		}()
	}
	i := 0
	for ; i < n; i++ {
		if ctx.Err() != nil || !tr.mayDelete() {
			break
		}
		tr.inflight.Add(1)
		next <- i
	}
	close(next)
	wg.Wait()
	for ; i < n; i++ {
		tr.t.skip(kind, ReasonNotAttempted, id(i))
	}
}
