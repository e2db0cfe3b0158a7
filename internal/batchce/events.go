package batchce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ceforge/ceforge/internal/awsclient/ecsread"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
)

// JobStateChange is the EventBridge kind of Batch job events.
var JobStateChange = eventsrc.Kind{Source: "aws.batch", DetailType: "Batch Job State Change"}

// Observation is one observed state of a Batch job of a run, from an event
// or from DescribeJobs.
type Observation struct {
	RunID string
	// Lookup: the event carried no run tag; the job is ours only if the
	// reverse index written at launch (JOB#<job id>) names a run, and
	// RunID is filled from it by the sink.
	Lookup    bool
	Head      bool
	JobID     string
	Status    string // Batch job status
	Reason    string
	ExitCode  *int
	LogStream string
	// ContainerInstance is the ECS container instance the job runs on
	// (from STARTING on, on EC2 compute environments).
	ContainerInstance string
	At                time.Time
	StartedAt         time.Time
	// Account and Region are the event's (empty for the reconciler's own
	// observations); MessageID its queue message.
	Account, Region, MessageID string
}

// jobDetail decodes only what ceforge uses of the event detail.
type jobDetail struct {
	JobID        string `json:"jobId"`
	JobName      string `json:"jobName"`
	JobQueue     string `json:"jobQueue"`
	Status       string `json:"status"`
	StatusReason string `json:"statusReason"`
	StartedAt    int64  `json:"startedAt"`
	StoppedAt    int64  `json:"stoppedAt"`
	Container    struct {
		ExitCode             *int   `json:"exitCode"`
		Reason               string `json:"reason"`
		LogStreamName        string `json:"logStreamName"`
		ContainerInstanceArn string `json:"containerInstanceArn"`
	} `json:"container"`
	Tags struct {
		RunID string `json:"ceforge:run-id"`
	} `json:"tags"`
}

// Parser returns the parser of Batch Job State Change events. A job is
// ours when it carries the run-id ownership tag (head jobs get it at
// submit, compute jobs through Nextflow's resource labels). Events without
// it (older event shapes carry no tags at all) are ours only when the
// reverse index written at launch knows the job: the parser marks them for
// that lookup when the job is named like a head job (prefix "head-" run id),
// and drops every other job as eventsrc.ErrNotOurs with no store access.
func Parser(prefix string) eventsrc.Parser {
	headPrefix := HeadJobName(prefix, "")
	return func(env eventsrc.Envelope) (any, error) {
		var d jobDetail
		if err := scanDetail(env.Detail, &d); err != nil {
			return nil, fmt.Errorf("decode Batch job detail: %w", err)
		}
		if d.JobID == "" {
			return nil, eventsrc.ErrNotOurs
		}
		o := &Observation{
			RunID: d.Tags.RunID, JobID: d.JobID, Status: d.Status, Reason: d.StatusReason,
			ExitCode: d.Container.ExitCode, LogStream: d.Container.LogStreamName, ContainerInstance: d.Container.ContainerInstanceArn, At: env.Time,
			Account: env.Account, Region: env.Region,
			Head: len(d.JobName) == len(headPrefix)+len(d.Tags.RunID) && strings.HasPrefix(d.JobName, headPrefix) && strings.HasSuffix(d.JobName, d.Tags.RunID),
		}
		if o.RunID == "" {
			if !strings.HasPrefix(d.JobName, headPrefix) || !ids.Valid(d.JobName[len(headPrefix):]) {
				return nil, eventsrc.ErrNotOurs
			}
			o.Lookup, o.Head = true, true
		}
		if o.Reason == "" {
			o.Reason = d.Container.Reason
		}
		if d.StartedAt > 0 {
			o.StartedAt = time.UnixMilli(d.StartedAt).UTC()
			if d.Status == "RUNNING" {
				o.At = o.StartedAt
			}
		}
		if d.StoppedAt > 0 && (d.Status == "SUCCEEDED" || d.Status == "FAILED") {
			o.At = time.UnixMilli(d.StoppedAt).UTC()
		}
		return o, nil
	}
}

// Task states of compute jobs, stored per job in the run record. Their
// order is the order a job moves through; a job only moves forward, so
// duplicates and late events change nothing. Both terminal states share a
// rank: the first recorded stays.
const (
	taskSubmitted = 1 + iota
	taskPending
	taskRunnable
	taskStarting
	taskRunning
	taskSucceeded
	taskFailed
)

var taskCodes = map[string]int{
	"SUBMITTED": taskSubmitted, "PENDING": taskPending, "RUNNABLE": taskRunnable, "STARTING": taskStarting,
	"RUNNING": taskRunning, "SUCCEEDED": taskSucceeded, "FAILED": taskFailed,
}

func taskRank(code int) int { return min(code, taskSucceeded) }

func taskTerminal(code int) bool { return code >= taskSucceeded }

// mergeTask returns the state to keep for a job seen in state old and now next.
func mergeTask(old, next int) int {
	if old == 0 || taskRank(next) > taskRank(old) {
		return next
	}
	return old
}

// progressOf counts tasks by their current state.
func progressOf(states map[string]int) run.Progress {
	var p run.Progress
	for _, st := range states {
		switch {
		case st == taskSucceeded:
			p.Succeeded++
		case st == taskFailed:
			p.Failed++
		case st == taskRunning:
			p.Running++
		default:
			p.Submitted++
		}
	}
	return p
}

// runRecord is the stored run plus the per-task states behind its counters
// (not part of the API shape).
type runRecord struct {
	run.Run
	TaskStates map[string]int `json:"taskStates,omitempty"`
}

// RunStore is the part of the store the sink uses.
type RunStore interface {
	Get(ctx context.Context, kind store.Kind, id string, out any) (int64, error)
	Patch(ctx context.Context, kind store.Kind, id string, set map[string]any, ifVersion int64) error
	GetRefs(ctx context.Context, kind store.Kind, ids []string) (map[string]string, error)
}

// Transitioner moves a run's status forward (run.Service).
type Transitioner interface {
	Transition(ctx context.Context, r *run.Run, u run.Update) (bool, error)
}

// Sink applies batches of Batch job observations: it groups them per run
// and makes one store write per run per batch (one read to merge with the
// stored task states, one conditional write); a batch that also moves the
// run's status (a few times per run) adds the status transition.
//
// Counters are derived, not incremented: the run record keeps each compute
// job's furthest state (taskStates, job id → state code) and the counters
// are recounted from it at every write. Duplicated, reordered or replayed
// events therefore never double count, and task writes are guarded by the
// record's version, so concurrent batches of one run never lose or regress
// each other's tasks (a conflict re-reads and re-merges). The cost is item size: ~45 bytes per task,
// so a run record holds the states of about 8,000 compute jobs.
type Sink struct {
	Store   RunStore
	Runs    Transitioner
	Log     *slog.Logger
	Workers int // runs applied concurrently per batch (default 8)
	// Writes counts store writes (for benchmarks and tests).
	Writes func()
	// Account is the control plane's account (config.Config.Account):
	// events about runs in it must come from it ("": not checked).
	Account string
}

// maxInlineTaskUpdates bounds per-task SET clauses in one update (DynamoDB
// caps update expressions at 4 KB); beyond it the whole map is written.
const maxInlineTaskUpdates = 120

// maxRetries bounds re-reads after a concurrent change of the same run.
const maxRetries = 5

// Apply implements eventsrc.Sink. Observations of tagless jobs are first
// resolved through the reverse index (one batched read for the whole
// batch); those it does not know are reported as not ours.
func (s *Sink) Apply(ctx context.Context, events []eventsrc.Event) eventsrc.Result {
	var res eventsrc.Result
	obs := make([]Observation, 0, len(events))
	msgs := make([]string, 0, len(events))
	var lookup []string
	for _, e := range events {
		if o, ok := e.Value.(*Observation); ok {
			o.MessageID = e.MessageID
			obs = append(obs, *o)
			msgs = append(msgs, e.MessageID)
			if o.Lookup {
				lookup = append(lookup, o.JobID)
			}
		}
	}
	if len(lookup) > 0 {
		owners, err := s.Store.GetRefs(ctx, store.KindJob, lookup)
		if err != nil {
			s.log().Warn("reverse index of tagless Batch jobs not read; will be retried", "error", err.Error())
		}
		kept, keptMsgs := obs[:0], msgs[:0:0]
		for i, o := range obs {
			if o.Lookup {
				switch {
				case err != nil:
					res.Failed = append(res.Failed, msgs[i])
					continue
				case owners[o.JobID] == "":
					res.NotOurs = append(res.NotOurs, msgs[i])
					continue
				}
				o.RunID = owners[o.JobID]
			}
			kept, keptMsgs = append(kept, o), append(keptMsgs, msgs[i])
		}
		obs, msgs = kept, keptMsgs
	}
	failedRuns, foreign := s.apply(ctx, obs)
	for i, o := range obs {
		switch {
		case failedRuns[o.RunID] != nil:
			res.Failed = append(res.Failed, msgs[i])
		case foreign[o.MessageID]:
			res.NotOurs = append(res.NotOurs, msgs[i])
		}
	}
	return res
}

// ApplyObservations applies observations (the reconciler's) and joins the errors.
func (s *Sink) ApplyObservations(ctx context.Context, obs []Observation) error {
	var errs []error
	failed, _ := s.apply(ctx, obs)
	for _, err := range failed {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Aggregate groups observations per run, keeping their order.
func Aggregate(obs []Observation) (order []string, byRun map[string][]Observation) {
	byRun = map[string][]Observation{}
	for _, o := range obs {
		if _, ok := byRun[o.RunID]; !ok {
			order = append(order, o.RunID)
		}
		byRun[o.RunID] = append(byRun[o.RunID], o)
	}
	return order, byRun
}

// apply applies observations run by run; it returns the runs that failed
// and the messages of observations from another account or region than
// their run's (not ours).
func (s *Sink) apply(ctx context.Context, obs []Observation) (failed map[string]error, foreign map[string]bool) {
	order, byRun := Aggregate(obs)
	failed, foreign = map[string]error{}, map[string]bool{}
	workers := s.Workers
	if workers <= 0 {
		workers = 8
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for _, id := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func(id string) {
			defer func() { <-sem; wg.Done() }()
			dropped, err := s.applyRun(ctx, id, byRun[id])
			mu.Lock()
			for _, m := range dropped {
				foreign[m] = true
			}
			mu.Unlock()
			if err != nil {
				mu.Lock()
				failed[id] = err
				mu.Unlock()
				s.log().Warn("batch job events of run not applied; will be retried", "run_id", id, "error", err.Error())
			}
		}(id)
	}
	wg.Wait()
	return failed, foreign
}

func (s *Sink) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// change is what a batch of observations does to one run.
type change struct {
	Head       *run.Update
	Set        map[string]any
	TaskStates map[string]int // merged states (nil when no task changed)
}

// planChange computes the change of rec from obs (pure aggregation).
func planChange(rec *runRecord, obs []Observation) change {
	var ch change
	changed := map[string]int{}
	var merged map[string]int
	var head *Observation
	for i := range obs {
		o := &obs[i]
		if !o.Head {
			continue
		}
		if rec.Backend != nil && rec.Backend.JobID != "" && o.JobID != rec.Backend.JobID {
			continue // only the recorded head moves a run (a job of a superseded submit does not)
		}
		if head == nil || laterHead(o, head) {
			head = o
		}
	}
	// A run's counters stop at its end: task observations dated after it
	// (recorded, or reached in this batch) change nothing. Earlier ones
	// still count, however late they are delivered.
	var end *time.Time
	if run.Terminal(rec.Status) {
		end = rec.Timeline.Completed
	} else if head != nil && run.Terminal(headStatus(head.Status, false)) {
		end = &head.At
	}
	for i := range obs {
		o := &obs[i]
		if o.Head {
			continue
		}
		code := taskCodes[o.Status]
		if code == 0 || (end != nil && o.At.After(*end)) {
			continue
		}
		old := rec.TaskStates[o.JobID]
		if merged != nil {
			if v, ok := merged[o.JobID]; ok {
				old = v
			}
		}
		if next := mergeTask(old, code); next != old {
			if merged == nil {
				merged = make(map[string]int, len(rec.TaskStates)+len(obs))
				for k, v := range rec.TaskStates {
					merged[k] = v
				}
			}
			merged[o.JobID] = next
			changed[o.JobID] = next
		}
	}
	set := map[string]any{}
	if merged != nil {
		ch.TaskStates = merged
		if rec.TaskStates == nil || len(changed) > maxInlineTaskUpdates {
			set["taskStates"] = merged
		} else {
			for id, st := range changed {
				set["taskStates."+id] = st
			}
		}
		set["progress"] = progressOf(merged)
	}
	if head != nil {
		studioHost(rec, head, set)
		if head.LogStream != "" && (rec.Logs == nil || rec.Logs.Stream == "") {
			lr := run.LogRef{Stream: head.LogStream}
			if rec.Logs != nil {
				lr.Group = rec.Logs.Group
			}
			set["logs"] = lr
		}
		st := headStatus(head.Status, rec.CancelRequested)
		if run.Moves(rec.Status, st) {
			u := run.Update{Status: st, At: head.At}
			switch st {
			case run.StatusSucceeded:
				zero := 0
				u.ExitCode = head.ExitCode
				if u.ExitCode == nil {
					u.ExitCode = &zero
				}
			case run.StatusFailed:
				u.Reason, u.ExitCode = nonEmpty(head.Reason, "head job failed"), head.ExitCode
			case run.StatusCancelled:
				u.Reason, u.ExitCode = rec.CancelledReason(), head.ExitCode
			}
			if run.Terminal(st) {
				u.RunningAt = head.StartedAt // recorded if the RUNNING event was missed
			}
			ch.Head = &u
		}
	}
	ch.Set = set
	return ch
}

// studioHost records where a studio's head job runs: the container
// instance Batch reports it on (the API finds the EC2 instance behind it
// when asked how to connect). A job seen on another container instance
// forgets the host found for the previous one.
func studioHost(rec *runRecord, head *Observation, set map[string]any) {
	b := rec.Backend
	if rec.Kind != run.KindStudio || b == nil || b.JobID != head.JobID || b.ContainerInstanceARN == head.ContainerInstance {
		return
	}
	if _, ok := ecsread.ClusterOf(head.ContainerInstance); !ok {
		return
	}
	set["backend.containerInstanceArn"] = head.ContainerInstance
	if b.HostInstanceID != "" {
		set["backend.hostInstanceId"] = nil
	}
}

// laterHead reports whether head observation a supersedes b: a higher
// rank, or the same status later.
func laterHead(a, b *Observation) bool {
	ra, rb := run.Rank(headStatus(a.Status, false)), run.Rank(headStatus(b.Status, false))
	return ra > rb || (ra == rb && a.At.After(b.At))
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// headStatus maps a head job's Batch status to the run status.
func headStatus(batchStatus string, cancelRequested bool) string {
	switch batchStatus {
	case "RUNNING":
		return run.StatusRunning
	case "SUCCEEDED":
		return run.StatusSucceeded
	case "FAILED":
		if cancelRequested {
			return run.StatusCancelled
		}
		return run.StatusFailed
	case "SUBMITTED", "PENDING", "RUNNABLE", "STARTING":
		return run.StatusSubmitted
	}
	return ""
}

func (s *Sink) wrote() {
	if s.Writes != nil {
		s.Writes()
	}
}

// applyRun reads the run once and writes once (retrying on a concurrent change).
func (s *Sink) applyRun(ctx context.Context, runID string, obs []Observation) (foreign []string, err error) {
	refused := int64(-1) // version at which a transition was refused
	for attempt := 0; attempt < maxRetries; attempt++ {
		var rec runRecord
		v, err := s.Store.Get(ctx, store.KindRun, runID, &rec)
		if errors.Is(err, store.ErrNotFound) {
			return foreign, nil // tagged by us but no record (deleted, or another deployment's): nothing to do
		}
		if err != nil {
			return foreign, err
		}
		if v == refused {
			// Nobody wrote since the transition was refused: it was stale
			// (older evidence than the stored status), not a lost race.
			return foreign, nil
		}
		rec.Version = v
		if attempt == 0 {
			// A job id (and the run tag it carries) is the run's only in
			// the run's own account and region.
			kept := obs[:0:0]
			for _, o := range obs {
				if rec.ObservedFrom(o.Account, o.Region, s.Account) {
					kept = append(kept, o)
					continue
				}
				s.log().Warn("event from another account or region than its run's", "run_id", runID, "job_id", o.JobID, "account", o.Account, "region", o.Region)
				foreign = append(foreign, o.MessageID)
			}
			if obs = kept; len(obs) == 0 {
				return foreign, nil
			}
		}
		ch := planChange(&rec, obs)
		if ch.Head != nil && ch.TaskStates == nil {
			// Status (and log location) only: the monotonic transition is the guard.
			ch.Head.Fields = ch.Set
			s.wrote()
			ok, err := s.Runs.Transition(ctx, &rec.Run, *ch.Head)
			if err != nil || ok {
				return foreign, err
			}
			refused = v
			continue // moved meanwhile, or stale: re-read and re-plan
		}
		if len(ch.Set) == 0 {
			return foreign, nil
		}
		// Task states need the version guard (a transition has none), so a
		// batch that also changes the run's status writes the tasks first
		// and the status next: two writes, a few times per run.
		s.wrote()
		err = s.Store.Patch(ctx, store.KindRun, runID, ch.Set, v)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil || ch.Head == nil {
			return foreign, err
		}
	}
	return foreign, fmt.Errorf("run %s kept changing under %d attempts", runID, maxRetries)
}
