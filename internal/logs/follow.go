package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/run"
)

// End reasons of a follow stream.
const (
	EndRunEnded = "run_ended"
	EndTimeout  = "time_bound"
	EndError    = "error"
)

// EndEvent is the data of the last event of a follow stream.
type EndEvent struct {
	Reason     string `json:"reason"`
	Status     string `json:"status"`
	NextCursor string `json:"nextCursor"`
	Message    string `json:"message,omitempty"`
}

// deadlineMargin is kept before a request's context deadline to send the end event.
const deadlineMargin = 3 * time.Second

// maxFollowErrors ends a follow stream after this many failed polls in a row.
const maxFollowErrors = 5

// follow streams the run's new lines as server-sent events:
//
//	event: line    id: <cursor after the line>   data: {"timestamp","message"}
//	event: status  data: {"status"}              (at start and on change)
//	event: progress data: the run's progress view (GET /runs/{id}/progress), at start and on change
//	event: end     data: EndEvent                (run ended, time bound, error)
//	: heartbeat                                  (comment, when otherwise silent)
//
// Each line's id is a full cursor, so a client resuming with the last id it
// received (or an EventSource sending Last-Event-ID) loses and repeats nothing.
func (s *Service) follow(w http.ResponseWriter, r *http.Request, runID, cursor string) error {
	ctx := r.Context()
	if err := s.loadKey(ctx); err != nil {
		return err
	}
	t, err := s.resolve(ctx, runID)
	if err != nil {
		return err
	}
	pos, err := s.start(t, cursor)
	if err != nil {
		return err // before any byte is sent: a normal JSON error
	}
	release, err := s.takeFollowSlot(ctx)
	if err != nil {
		return err
	}
	defer release()
	log := api.Logger(ctx).With("run_id", runID)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	sse := &sseWriter{w: w, rc: rc}

	cur := t.run
	now := time.Now()
	deadline := now.Add(s.opts.MaxFollow)
	if d, ok := ctx.Deadline(); ok && d.Add(-deadlineMargin).Before(deadline) {
		// The Lambda's own deadline comes first: end cleanly, with the cursor,
		// before the runtime cuts the stream.
		deadline = d.Add(-deadlineMargin)
	}
	lastWrite, lastData, lastRefresh := now, now, now
	nextPoll := now
	interval := s.opts.PollInterval
	failures := 0
	sse.event("status", "", map[string]string{"status": cur.Status})
	var lastProgress []byte
	progressNow := func() {
		if s.deps.Progress == nil {
			return
		}
		v, err := s.deps.Progress(ctx, cur)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("follow: read progress", "error", err.Error())
			}
			return
		}
		b, _ := json.Marshal(v)
		if !bytes.Equal(b, lastProgress) {
			sse.event("progress", "", json.RawMessage(b))
			lastProgress = b
		}
	}
	progressNow()
	if err := sse.flush(); err != nil {
		return nil // client gone
	}
	cursorNow := func() string { return s.cursorFor(cur, pos) }
	// One call per poll, without SDK retries: the follower's own back-off is
	// the retry policy, so a throttled account is not hammered further.
	noRetry := func(o *cloudwatchlogs.Options) { o.RetryMaxAttempts = 1 }

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wake := min(nextPoll.UnixNano(), lastWrite.Add(s.opts.Heartbeat).UnixNano(), deadline.UnixNano())
		timer.Reset(time.Until(time.Unix(0, wake)))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		now = time.Now()
		if !now.Before(deadline) {
			sse.event("end", "", EndEvent{Reason: EndTimeout, Status: cur.Status, NextCursor: cursorNow()})
			_ = sse.flush()
			return nil
		}
		if now.Sub(lastWrite) >= s.opts.Heartbeat {
			sse.comment("heartbeat")
		}
		if now.Before(nextPoll) {
			if err := sse.flush(); err != nil {
				return nil
			}
			lastWrite = now
			continue
		}

		if now.Sub(lastRefresh) >= s.opts.RunRefresh || cur.Logs == nil {
			if fresh, err := s.deps.Runs.Get(ctx, runID); err == nil {
				if fresh.Status != cur.Status {
					sse.event("status", "", map[string]string{"status": fresh.Status})
				}
				if !sameStream(cur.Logs, fresh.Logs) {
					pos = position{} // the head moved to a new stream (or got its first)
				}
				cur = fresh
			} else if ctx.Err() == nil {
				log.Warn("follow: refresh run", "error", err.Error())
			}
			progressNow()
			lastRefresh = now
		}

		var b batch
		if cur.Logs != nil && cur.Logs.Group != "" && cur.Logs.Stream != "" {
			b, err = read(ctx, t.clients.logs, cur.Logs.Group, cur.Logs.Stream, pos, maxEventsPerCall, 1, noRetry)
		} else {
			b, err = batch{next: pos, end: true}, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			throttled := errors.Is(err, errThrottled)
			log.Warn("follow: read log", "error", err.Error(), "throttled", throttled, "failures", failures)
			if !throttled && failures >= maxFollowErrors {
				sse.event("end", "", EndEvent{Reason: EndError, Status: cur.Status, NextCursor: cursorNow(),
					Message: "reading the log keeps failing; resume later with nextCursor"})
				_ = sse.flush()
				return nil
			}
			interval = min(2*interval, s.opts.MaxThrottleInterval)
			nextPoll = now.Add(interval)
			continue
		}
		failures = 0
		for i, l := range b.lines {
			sse.event("line", s.cursorFor(cur, b.after[i]), l)
		}
		pos = b.next
		if len(b.lines) == 0 && b.end && !s.producing(cur, now) {
			sse.event("end", "", EndEvent{Reason: EndRunEnded, Status: cur.Status, NextCursor: cursorNow()})
			_ = sse.flush()
			return nil
		}
		switch idle := now.Sub(lastData) >= s.opts.IdleAfter; {
		case len(b.lines) > 0:
			lastData = now
			interval = s.opts.PollInterval
		case idle && interval <= s.opts.MaxIdleInterval:
			interval = min(interval*3/2, s.opts.MaxIdleInterval)
		case idle:
			// Coming down from a throttling back-off to the idle ceiling.
			interval = max(interval/2, s.opts.MaxIdleInterval)
		default:
			// Active, not throttled any more: recover gradually.
			interval = max(interval/2, s.opts.PollInterval)
		}
		if sse.n > 0 {
			if err := sse.flush(); err != nil {
				return nil
			}
			lastWrite = now
		}
		if !cur.Active() {
			// Drain an ended run at full speed (still one call per interval).
			interval = s.opts.PollInterval
		}
		nextPoll = now.Add(interval)
	}
}

// takeFollowSlot takes one of the caller's follow slots (a lease per slot
// in the table, so the cap holds across every instance of the function),
// or answers 429 too_many_follows. The lease outlives the longest follow;
// a follower that dies frees its slot when the lease expires.
func (s *Service) takeFollowSlot(ctx context.Context) (func(), error) {
	if s.deps.Leases == nil {
		return func() {}, nil
	}
	caller := api.IdentityFrom(ctx)
	if caller == "" {
		caller = "anonymous"
	}
	holder := ids.New()
	now := time.Now()
	until := now.Add(s.opts.MaxFollow + time.Minute)
	for i := range s.opts.MaxFollowsPerCaller {
		slot := fmt.Sprintf("follow#%s#%d", caller, i)
		ok, err := s.deps.Leases.Lease(ctx, slot, holder, now, until)
		if err != nil {
			return nil, fmt.Errorf("take a follow slot: %w", err)
		}
		if ok {
			return func() {
				// The request's context may be done: release on a fresh one.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if err := s.deps.Leases.Release(rctx, slot, holder); err != nil {
					s.deps.Log.Warn("release follow slot", "slot", slot, "error", err.Error())
				}
			}, nil
		}
	}
	return nil, &apierr.Error{Status: http.StatusTooManyRequests, Code: "too_many_follows",
		Message: fmt.Sprintf("%s already follows %d logs, the most one caller may follow at once; end a follow stream (or wait for one to end) and retry", caller, s.opts.MaxFollowsPerCaller)}
}

func sameStream(a, b *run.LogRef) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// sseWriter buffers events and writes them on flush.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
	n   int
}

func (s *sseWriter) event(name, id string, data any) {
	b, _ := json.Marshal(data)
	if id != "" {
		fmt.Fprintf(&s.buf, "id: %s\n", id)
	}
	fmt.Fprintf(&s.buf, "event: %s\ndata: %s\n\n", name, b)
	s.n++
}

func (s *sseWriter) comment(text string) {
	fmt.Fprintf(&s.buf, ": %s\n\n", text)
	s.n++
}

func (s *sseWriter) flush() error {
	if s.buf.Len() > 0 {
		if _, err := s.w.Write(s.buf.Bytes()); err != nil {
			return err
		}
		s.buf.Reset()
	}
	s.n = 0
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}
