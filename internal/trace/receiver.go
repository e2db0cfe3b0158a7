// Package trace is ceforge's server for Nextflow's trace protocol (what
// `nextflow run -with-tower <url>` speaks, 23.04 through 26.x): create,
// begin, progress, heartbeat and complete calls, authorised by a per-run
// token, recorded through internal/progress. Begin, complete and a crossed
// cost limit are handed on (Notify) to what may change runs: the receiver
// itself writes only progress and task items.
package trace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/logging"
	"github.com/ceforge/ceforge/internal/progress"
	"github.com/ceforge/ceforge/internal/run"
)

// Limits of the protocol.
const (
	// MaxTasksPerCall is Nextflow's batch size; more is refused.
	MaxTasksPerCall = 100
	// MaxBodyBytes bounds a body: 100 tasks with their scripts (10 KB each
	// at most) fit; Lambda takes at most 6 MB.
	MaxBodyBytes = 5 << 20
	// MaxWorkflowIDLen is the longest workflow id Nextflow's schema keeps.
	MaxWorkflowIDLen = 16
	// DefaultGrace is how long after a run's end its token still works
	// (late retries of the last calls).
	DefaultGrace = 15 * time.Minute
)

// Receiver serves the trace routes.
type Receiver struct {
	Progress *progress.Store
	// Notify hands a run on after begin, complete or a crossed cost limit
	// (the reconciler applies it: internal/progress.Applier). Nil: the
	// reconciler's scheduled pass picks it up.
	Notify func(ctx context.Context, runID string) error
	// Wave relays heads' Wave requests (nil: not served).
	Wave     *WaveRelay
	Throttle *Throttle
	Grace    time.Duration
	Log      *slog.Logger
	Now      func() time.Time
}

func (rc *Receiver) now() time.Time {
	if rc.Now != nil {
		return rc.Now().UTC()
	}
	return time.Now().UTC()
}

func (rc *Receiver) grace() time.Duration {
	if rc.Grace > 0 {
		return rc.Grace
	}
	return DefaultGrace
}

// Route is one trace route.
type Route struct{ Method, Path string }

// Routes lists the protocol's routes (the CDK app declares exactly these
// without IAM authorization, on the trace function).
var Routes = []Route{
	{http.MethodPost, "/trace/create"},
	{http.MethodPut, "/trace/{id}/begin"},
	{http.MethodPut, "/trace/{id}/progress"},
	{http.MethodPut, "/trace/{id}/heartbeat"},
	{http.MethodPut, "/trace/{id}/complete"},
	{http.MethodPatch, "/workflow/{id}"},
}

// Register adds the trace routes to a router.
func (rc *Receiver) Register(rt *api.Router) {
	handlers := []func(context.Context, *call) (any, error){rc.create, rc.begin, rc.progress, rc.heartbeat, rc.complete, rc.patch}
	for i, r := range Routes {
		rt.Handle(r.Method, r.Path, rc.serve(handlers[i]))
	}
	if rc.Wave != nil {
		rc.registerWave(rt)
	}
}

// Error is a protocol error: Nextflow reads {"message": …} from the body.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func failf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// call is one authorised request.
type call struct {
	runID string
	body  []byte
	facts progress.RunFacts
	snap  progress.Snapshot
	token string
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (rc *Receiver) serve(h func(context.Context, *call) (any, error)) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		ctx := r.Context()
		log := logging.From(ctx, rc.Log)
		out, err := rc.handle(ctx, r, h)
		var perr *Error
		switch {
		case errors.As(err, &perr):
			if perr.Status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			log.Info("trace call refused", "path", r.URL.Path, "status", perr.Status, "reason", perr.Message)
			writeJSON(w, perr.Status, map[string]string{"message": perr.Message})
		case err != nil:
			// Nextflow retries 5xx (all calls from 25.10; begin onwards before).
			log.Error("trace call failed", "path", r.URL.Path, "error", err.Error())
			rid, _ := api.RequestIDFrom(ctx)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "internal error; request id " + rid})
		default:
			writeJSON(w, http.StatusOK, out)
		}
		return nil
	}
}

func (rc *Receiver) handle(ctx context.Context, r *http.Request, h func(context.Context, *call) (any, error)) (any, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, failf(http.StatusRequestEntityTooLarge, "the body exceeds %d bytes", MaxBodyBytes)
	}
	if err != nil {
		return nil, failf(http.StatusBadRequest, "could not read the body")
	}
	token, ok := ParseAuthorization(r.Header.Get("Authorization"))
	if !ok {
		return nil, failf(http.StatusUnauthorized, "missing or malformed Authorization: send the run's token as Bearer or Basic @token")
	}
	if !rc.Throttle.Allow(HashToken(token), rc.now()) {
		return nil, failf(http.StatusTooManyRequests, "too many trace calls for this run; retry shortly")
	}
	c := &call{body: body, token: token, runID: r.PathValue("id")}
	if r.URL.Path == "/trace/create" {
		var req CreateRequest
		if err := decode(body, &req); err != nil {
			return nil, failf(http.StatusBadRequest, "%s", err.Error())
		}
		c.runID = string(req.WorkflowID)
		if c.runID == "" {
			c.runID = string(req.LaunchID)
		}
		if c.runID == "" {
			return nil, failf(http.StatusBadRequest, "workflowId is required: ceforge runs set TOWER_WORKFLOW_ID to the run id")
		}
	}
	if len(c.runID) > MaxWorkflowIDLen || !ids.Valid(c.runID) {
		return nil, failf(http.StatusUnauthorized, "unknown workflow id %q", trunc(c.runID, 32))
	}
	if err := rc.authorise(ctx, c); err != nil {
		return nil, err
	}
	if rc.afterEnd(c) {
		// As with events: a run's progress stops at its end. A call dated
		// after it (Nextflow still reporting once the head was seen ended)
		// changes nothing; it is answered so that Nextflow goes on.
		logging.From(ctx, rc.Log).Info("trace call after the run's end ignored", "run_id", c.runID, "path", r.URL.Path)
		return map[string]any{"status": "OK", "workflowId": c.runID}, nil
	}
	return h(ctx, c)
}

// afterEnd reports whether the call is dated (its body's instant, on
// Nextflow's clock) after the end of the run, which has ended. Calls
// dated before it still count, however late they arrive: the last
// progress and complete of a run often arrive after its head's end event.
func (rc *Receiver) afterEnd(c *call) bool {
	end := c.facts.Timeline.Completed
	if !run.Terminal(c.facts.Status) || end == nil {
		return false
	}
	var body struct {
		Instant Num `json:"instant"`
	}
	_ = decode(c.body, &body) // a malformed body is refused by its handler
	_, at := instantOf(body.Instant, rc.now())
	return at.After(*end)
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// authorise checks the token against the run: it must be the run's own,
// and the run active or ended less than Grace ago. Anything else is a 401
// and nothing is written.
func (rc *Receiver) authorise(ctx context.Context, c *call) error {
	facts, snap, found, err := rc.Progress.Load(ctx, c.runID)
	if err != nil {
		return err
	}
	if !found || !facts.Trace.Enabled || !TokenMatches(c.token, facts.Trace.TokenHash) {
		return failf(http.StatusUnauthorized, "the token is not valid for workflow %s", c.runID)
	}
	if run.Terminal(facts.Status) {
		end := facts.Timeline.Completed
		if end == nil || rc.now().Sub(*end) > rc.grace() {
			return failf(http.StatusUnauthorized, "the token of workflow %s expired when the run ended", c.runID)
		}
	}
	c.facts, c.snap = facts, snap
	return nil
}

func instantOf(n Num, now time.Time) (int64, time.Time) {
	if n.Set && n.V > 0 {
		return int64(n.V), time.UnixMilli(int64(n.V)).UTC()
	}
	return now.UnixMilli(), now
}

func (rc *Receiver) notify(ctx context.Context, runID, why string) {
	if rc.Notify == nil {
		return
	}
	if err := rc.Notify(ctx, runID); err != nil {
		// The reconciler's scheduled pass applies it anyway.
		logging.From(ctx, rc.Log).Warn("hand-off of trace outcome failed", "run_id", runID, "why", why, "error", err.Error())
	}
}

func (rc *Receiver) create(ctx context.Context, c *call) (any, error) {
	var req CreateRequest
	_ = decode(c.body, &req) // decoded once already
	_, at := instantOf(req.Instant, rc.now())
	if _, err := rc.Progress.RecordPhase(ctx, c.runID, progress.PhaseUpdate{Phase: progress.PhaseCreated, At: at, SessionID: cut(req.SessionID, 36)}); err != nil {
		return nil, err
	}
	return map[string]any{"workflowId": c.runID}, nil
}

func (rc *Receiver) begin(ctx context.Context, c *call) (any, error) {
	var req BeginRequest
	if err := decode(c.body, &req); err != nil {
		return nil, failf(http.StatusBadRequest, "%s", err.Error())
	}
	_, at := instantOf(req.Instant, rc.now())
	wf := toWorkflow(&req.Workflow, req.ProcessNames)
	if wf.Start != nil {
		at = *wf.Start
	}
	if err := rc.Progress.PutWorkflow(ctx, c.runID, wf, false); err != nil {
		return nil, err
	}
	moved, err := rc.Progress.RecordPhase(ctx, c.runID, progress.PhaseUpdate{Phase: progress.PhaseRunning, At: at, SessionID: wf.SessionID})
	if err != nil {
		return nil, err
	}
	if moved {
		rc.notify(ctx, c.runID, "begin")
	}
	return map[string]any{"status": "OK", "workflowId": c.runID}, nil
}

func (rc *Receiver) pricing(c *call) progress.Pricing {
	return progress.Pricing{Region: c.facts.Backend.Region, InstanceType: c.facts.Backend.InstanceType, Spot: c.facts.Backend.Spot}
}

func (rc *Receiver) progress(ctx context.Context, c *call) (any, error) {
	u, err := DecodeProgress(c.body)
	if err != nil {
		return nil, err
	}
	return rc.record(ctx, c, u)
}

// ProgressUpdate is a decoded progress (or heartbeat) body.
type ProgressUpdate struct {
	// Tasks holds the latest record of each task in the call.
	Tasks     []progress.Task
	Counts    *progress.Counts
	Processes []progress.ProcessProgress
	Instant   Num
}

// DecodeProgress reads a progress body: at most MaxTasksPerCall tasks,
// each kept once (its most advanced record), and the counters.
func DecodeProgress(body []byte) (ProgressUpdate, error) {
	var req ProgressRequest
	if err := decode(body, &req); err != nil {
		return ProgressUpdate{}, failf(http.StatusBadRequest, "%s", err.Error())
	}
	if len(req.Tasks) > MaxTasksPerCall {
		return ProgressUpdate{}, failf(http.StatusBadRequest, "at most %d tasks per progress call, got %d", MaxTasksPerCall, len(req.Tasks))
	}
	u := updateOf(req.Progress, req.Instant)
	u.Tasks = make([]progress.Task, 0, len(req.Tasks))
	index := make(map[int64]int, len(req.Tasks))
	for i := range req.Tasks {
		t, ok := toTask(&req.Tasks[i])
		if !ok {
			continue
		}
		if j, seen := index[t.TaskID]; seen {
			if progress.TaskRank(t.Status) >= progress.TaskRank(u.Tasks[j].Status) {
				u.Tasks[j] = t
			}
			continue
		}
		index[t.TaskID] = len(u.Tasks)
		u.Tasks = append(u.Tasks, t)
	}
	return u, nil
}

func updateOf(p *ProgressBody, instant Num) ProgressUpdate {
	u := ProgressUpdate{Instant: instant}
	if p != nil {
		counts := toCounts(p)
		u.Counts, u.Processes = &counts, toProcesses(p)
	}
	return u
}

// record writes one call's tasks, then its counters and cost.
func (rc *Receiver) record(ctx context.Context, c *call, u ProgressUpdate) (any, error) {
	tw, err := rc.Progress.UpsertTasks(ctx, c.runID, u.Tasks, rc.pricing(c))
	if err != nil {
		return nil, err
	}
	inst, _ := instantOf(u.Instant, rc.now())
	if err := rc.Progress.RecordProgress(ctx, c.runID, progress.SnapshotUpdate{Instant: inst, Tasks: tw, Counts: u.Counts, Processes: u.Processes}); err != nil {
		return nil, err
	}
	if max := c.facts.MaxCostUSD; max != nil && tw.CostDelta > 0 {
		before := c.snap.TasksCostUSD
		if before <= *max && before+tw.CostDelta > *max {
			rc.notify(ctx, c.runID, "cost limit")
		}
	}
	return map[string]any{"status": "OK"}, nil
}

func (rc *Receiver) heartbeat(ctx context.Context, c *call) (any, error) {
	var req HeartbeatRequest
	if err := decode(c.body, &req); err != nil {
		return nil, failf(http.StatusBadRequest, "%s", err.Error())
	}
	return rc.record(ctx, c, updateOf(req.Progress, req.Instant))
}

func (rc *Receiver) complete(ctx context.Context, c *call) (any, error) {
	var req CompleteRequest
	if err := decode(c.body, &req); err != nil {
		return nil, failf(http.StatusBadRequest, "%s", err.Error())
	}
	wf := toWorkflow(&req.Workflow, nil)
	if err := rc.Progress.PutWorkflow(ctx, c.runID, wf, true); err != nil {
		return nil, err
	}
	if len(req.Metrics) > 0 {
		if err := rc.Progress.PutMetrics(ctx, c.runID, toMetrics(req.Metrics)); err != nil {
			return nil, err
		}
	}
	if req.Progress != nil {
		if _, err := rc.record(ctx, c, updateOf(req.Progress, req.Instant)); err != nil {
			return nil, err
		}
	}
	_, at := instantOf(req.Instant, rc.now())
	if wf.Complete != nil {
		at = *wf.Complete
	}
	success := wf.Success
	if success == nil {
		f := false
		success = &f
	}
	moved, err := rc.Progress.RecordPhase(ctx, c.runID, progress.PhaseUpdate{
		Phase: progress.PhaseCompleted, At: at, SessionID: wf.SessionID,
		Success: success, ErrorMessage: wf.ErrorMessage, ExitStatus: wf.ExitStatus,
	})
	if err != nil {
		return nil, err
	}
	if moved {
		rc.notify(ctx, c.runID, "complete")
	}
	return map[string]any{"status": "OK", "workflowId": c.runID}, nil
}

// patch accepts Platform's PATCH /workflow/{id} (scheduler run id, 26.04.5+)
// and ignores it: ceforge has no Seqera scheduler.
func (rc *Receiver) patch(context.Context, *call) (any, error) {
	return map[string]any{"status": "OK"}, nil
}
