package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/handlers"
	"github.com/ceforge/ceforge/internal/store"
)

// Dispatcher starts a queued sweep somewhere that may run for minutes: the
// API function cannot (API Gateway answers within 30 s).
type Dispatcher interface {
	// Dispatch starts sweep id; it returns once the sweep is handed over.
	Dispatch(ctx context.Context, id string) error
	// Busy reports whether a new sweep would have to wait (409 then).
	Busy() bool
}

// LocalDispatcher runs sweeps in a goroutine of this process (the local
// server), one at a time, each bounded like a Lambda invocation.
type LocalDispatcher struct {
	Sweeper *Sweeper
	// Timeout bounds one sweep (default 15 minutes, Lambda's maximum).
	Timeout time.Duration

	mu      sync.Mutex
	running bool
	wg      sync.WaitGroup
}

// Busy reports a sweep in progress.
func (d *LocalDispatcher) Busy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running
}

// Dispatch runs the sweep in the background.
func (d *LocalDispatcher) Dispatch(_ context.Context, id string) error {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return apierr.Conflict("sweep_in_progress", "", "a sweep is already running; try again when it has finished")
	}
	d.running = true
	d.mu.Unlock()
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() { d.mu.Lock(); d.running = false; d.mu.Unlock() }()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if _, err := d.Sweeper.Run(ctx, id); err != nil {
			d.Sweeper.log().Error("sweep failed", "sweep_id", id, "error", err.Error())
		}
	}()
	return nil
}

// Wait blocks until background sweeps have finished (tests, shutdown).
func (d *LocalDispatcher) Wait() { d.wg.Wait() }

// Invoker invokes the sweeper function asynchronously.
type Invoker func(ctx context.Context, payload []byte) error

// LambdaDispatcher hands the sweep to the sweeper function (asynchronous
// invocation; its reserved concurrency of 1 queues concurrent requests).
type LambdaDispatcher struct{ Invoke Invoker }

// Busy is always false: Lambda queues asynchronous invocations.
func (LambdaDispatcher) Busy() bool { return false }

// Dispatch invokes the sweeper function with the sweep id.
func (d LambdaDispatcher) Dispatch(ctx context.Context, id string) error {
	payload, _ := json.Marshal(Invocation{SweepID: id})
	return d.Invoke(ctx, payload)
}

// Invocation is the sweeper function's payload when the API asks for a
// sweep; scheduled invocations carry an EventBridge Scheduled Event.
type Invocation struct {
	SweepID string `json:"sweepId"`
}

// HTTP serves the /sweeps routes.
type HTTP struct {
	Sweeper    *Sweeper
	Dispatcher Dispatcher
}

// Routes registers the routes (append to App.Routes).
func (h *HTTP) Routes(rt *api.Router) {
	rt.Handle("POST", "/sweeps", h.create)
	rt.Handle("GET", "/sweeps", h.list)
	rt.Handle("GET", "/sweeps/{id}", h.get)
}

// CreateRequest is the body of POST /sweeps.
type CreateRequest struct {
	DryRun bool `json:"dryRun"`
}

func (h *HTTP) create(w http.ResponseWriter, r *http.Request) error {
	if _, err := handlers.ParseQuery(r); err != nil {
		return err
	}
	var req CreateRequest
	if err := api.Decode(w, r, &req); err != nil {
		return err
	}
	if h.Dispatcher.Busy() {
		return apierr.Conflict("sweep_in_progress", "", "a sweep is already running; try again when it has finished")
	}
	rep, err := h.Sweeper.Queue(r.Context(), req.DryRun, TriggerAPI, api.IdentityFrom(r.Context()))
	if err != nil {
		return err
	}
	if err := h.Dispatcher.Dispatch(r.Context(), rep.ID); err != nil {
		h.Sweeper.markFailed(r.Context(), rep, "dispatch: "+err.Error())
		if _, ok := apierr.As(err); ok {
			return err
		}
		return fmt.Errorf("dispatch sweep %s: %w", rep.ID, err)
	}
	w.Header().Set("Location", "/sweeps/"+rep.ID)
	return api.WriteJSON(w, http.StatusAccepted, rep)
}

func (h *HTTP) list(w http.ResponseWriter, r *http.Request) error {
	q, err := handlers.ParseQuery(r, "cursor", "limit")
	if err != nil {
		return err
	}
	cursor, err := q.String("cursor")
	if err != nil {
		return err
	}
	limit, err := q.Limit()
	if err != nil {
		return err
	}
	items, next, err := h.Sweeper.List(r.Context(), cursor, limit)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, struct {
		Items      []Report `json:"items"`
		NextCursor string   `json:"nextCursor,omitempty"`
	}{items, next})
}

func (h *HTTP) get(w http.ResponseWriter, r *http.Request) error {
	if _, err := handlers.ParseQuery(r); err != nil {
		return err
	}
	rep, err := h.Sweeper.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, rep)
}

// markFailed records a sweep that never started.
func (s *Sweeper) markFailed(ctx context.Context, r *Report, reason string) {
	now := s.now()
	r.Status, r.StopReason, r.FinishedAt = StatusFailed, reason, &now
	if _, err := s.Store.Save(context.WithoutCancel(ctx), store.KindSweep, r.ID, r, r.Version); err != nil {
		s.log().Error("record failed sweep", "sweep_id", r.ID, "error", err.Error())
	}
}

// scheduledEvent is the part of an EventBridge Scheduled Event we check.
type scheduledEvent struct {
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`
}

// HandleInvocation is the sweeper function's handler: {"sweepId": …} runs
// a sweep queued by the API; an EventBridge Scheduled Event runs a new one
// (dry-run per configuration). The Lambda deadline in ctx bounds the sweep.
func (s *Sweeper) HandleInvocation(ctx context.Context, payload json.RawMessage, scheduledDryRun bool) (*Report, error) {
	var inv Invocation
	if err := json.Unmarshal(payload, &inv); err != nil {
		return nil, fmt.Errorf("sweeper: decode invocation: %w", err)
	}
	if inv.SweepID != "" {
		return s.Run(ctx, inv.SweepID)
	}
	var ev scheduledEvent
	_ = json.Unmarshal(payload, &ev)
	if ev.Source == "aws.events" && ev.DetailType == "Scheduled Event" {
		return s.Sweep(ctx, scheduledDryRun, TriggerSchedule)
	}
	return nil, errors.New("sweeper: the payload is neither {\"sweepId\": …} nor a Scheduled Event")
}
