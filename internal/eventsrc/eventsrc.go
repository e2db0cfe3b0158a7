// Package eventsrc turns EventBridge events, delivered through SQS, into
// typed domain events. One parser per event kind is registered by
// {source, detail-type}; the envelope is decoded once; every message ends in
// an explicit outcome: done, dropped (an unknown kind, or not ours), or
// failed (reported as a batch item failure, so only that message is
// retried and, after the queue's maxReceiveCount, parked in its dead-letter
// queue). A message that cannot be decoded fails: it is never silently
// dropped.
package eventsrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ceforge/ceforge/internal/metrics"
)

// Envelope is the EventBridge event envelope.
type Envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
	// Time is the event's own time, or, when that is missing or not RFC 3339
	// (AWS's documented samples carry placeholders such as
	// "yyyy-mm-ddThh:mm:ssZ"), the time the queue received the message
	// (TimeReceived is then true).
	Time         time.Time `json:"-"`
	TimeReceived bool      `json:"-"`
}

// DecodeEnvelope decodes an event; receivedAt stands in for a time that is
// missing or unreadable. It fails only when the body is not a JSON object
// with a source and a detail-type.
func DecodeEnvelope(body string, receivedAt time.Time) (Envelope, error) {
	var raw struct {
		Envelope
		Time json.RawMessage `json:"time"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		return Envelope{}, fmt.Errorf("decode event: %w", err)
	}
	env := raw.Envelope
	if env.Source == "" || env.DetailType == "" {
		return Envelope{}, errors.New("decode event: no source or detail-type")
	}
	var ts string
	if json.Unmarshal(raw.Time, &ts) == nil {
		if t, err := time.Parse(time.RFC3339, ts); err == nil {
			env.Time = t.UTC()
		}
	}
	if env.Time.IsZero() {
		env.Time, env.TimeReceived = receivedAt.UTC(), true
	}
	return env, nil
}

// Kind identifies an event type.
type Kind struct {
	Source     string
	DetailType string
}

func (k Kind) String() string { return k.Source + "/" + k.DetailType }

// Message is one queued event.
type Message struct {
	ID   string // SQS message id (the unit of retry)
	Body string
	// SentAt is when the queue received the message (SQS SentTimestamp);
	// zero when unknown (the processor's clock is used then).
	SentAt time.Time
}

// Event is a decoded event: the envelope and the parser's typed value.
type Event struct {
	MessageID string
	Kind      Kind
	Envelope  Envelope
	Value     any
}

// ErrNotOurs is returned by a parser to drop an event it can tell, from the
// event alone, is not ceforge's (e.g. a Batch job in someone else's queue).
var ErrNotOurs = errors.New("event is not ours")

// Parser decodes the detail of one event kind.
type Parser func(Envelope) (any, error)

// Result is what a sink did with a batch: the message ids that failed and
// must be retried, and those it found are not ceforge's (after a lookup
// the parser could not make, e.g. the reverse index of a tagless job).
type Result struct {
	Failed  []string
	NotOurs []string
}

// Sink applies a batch of decoded events. Sinks see the whole batch so they
// can aggregate (one store write per run per batch).
type Sink interface {
	Apply(ctx context.Context, events []Event) Result
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, events []Event) Result

// Apply implements Sink.
func (f SinkFunc) Apply(ctx context.Context, events []Event) Result { return f(ctx, events) }

// Outcome counts what happened to a batch.
type Outcome struct {
	Unparsable, Unknown, NotOurs, Applied, Failed int
}

// Metric dimension values of EventsProcessed for messages without a
// registered kind.
const (
	KindUndecodable = "undecodable" // not an event at all
	KindOther       = "other"       // a kind no parser handles
)

// Processor decodes and dispatches batches. One processor serves one queue,
// and one sink (the platform's) applies all of its kinds, so a batch's events
// for one run can be applied together and in order.
type Processor struct {
	parsers map[Kind]Parser
	sink    Sink
	log     *slog.Logger
	metrics *metrics.Emitter
	now     func() time.Time
}

// NewProcessor returns a processor with no kinds registered: every event is
// dropped as unknown until a platform calls Handle.
func NewProcessor(log *slog.Logger, m *metrics.Emitter) *Processor {
	if log == nil {
		log = slog.Default()
	}
	return &Processor{parsers: map[Kind]Parser{}, log: log, metrics: m, now: time.Now}
}

// Handle sets the sink and the parsers of the kinds it applies.
func (p *Processor) Handle(sink Sink, parsers map[Kind]Parser) {
	p.sink = sink
	for k, parse := range parsers {
		p.parsers[k] = parse
	}
}

// Kinds returns the registered kinds.
func (p *Processor) Kinds() []Kind {
	out := make([]Kind, 0, len(p.parsers))
	for k := range p.parsers {
		out = append(out, k)
	}
	return out
}

// Process handles a batch and returns the ids of messages to retry: those
// the sink failed, and those that cannot be decoded (retried, then parked in
// the dead-letter queue where an operator sees them).
func (p *Processor) Process(ctx context.Context, msgs []Message) ([]string, Outcome) {
	var out Outcome
	var failed []string
	batch := make([]Event, 0, len(msgs))
	maxLag := map[string]time.Duration{} // per detail type: one metric per batch, not per event
	counts := map[[2]string]int{}        // {kind, outcome} -> messages
	kindOf := map[string]string{}        // message id -> detail type (metric dimension)
	now := p.now()
	for _, m := range msgs {
		received := m.SentAt
		if received.IsZero() {
			received = now
		}
		env, err := DecodeEnvelope(m.Body, received)
		if err != nil {
			out.Unparsable++
			counts[[2]string{KindUndecodable, "unparsable"}]++
			failed = append(failed, m.ID)
			p.log.Warn("undecodable event; will be retried, then dead-lettered", "message_id", m.ID, "bytes", len(m.Body), "error", err.Error())
			continue
		}
		k := Kind{env.Source, env.DetailType}
		parse, ok := p.parsers[k]
		if !ok || p.sink == nil {
			out.Unknown++
			counts[[2]string{KindOther, "unknown"}]++
			p.log.Info("dropping event of unknown kind", "message_id", m.ID, "kind", k.String())
			continue
		}
		v, err := parse(env)
		if errors.Is(err, ErrNotOurs) {
			out.NotOurs++
			counts[[2]string{k.DetailType, "not_ours"}]++
			continue
		}
		if err != nil {
			out.Unparsable++
			counts[[2]string{k.DetailType, "unparsable"}]++
			failed = append(failed, m.ID)
			p.log.Warn("event with undecodable detail; will be retried, then dead-lettered", "message_id", m.ID, "kind", k.String(), "error", err.Error())
			continue
		}
		if env.TimeReceived {
			p.log.Info("event time missing or not RFC 3339; using the receive time", "message_id", m.ID, "kind", k.String())
		} else if lag := now.Sub(env.Time); lag > maxLag[k.DetailType] {
			maxLag[k.DetailType] = lag
		}
		kindOf[m.ID] = k.DetailType
		batch = append(batch, Event{MessageID: m.ID, Kind: k, Envelope: env, Value: v})
	}
	if len(batch) > 0 {
		res := p.sink.Apply(ctx, batch)
		out.Failed, out.NotOurs = len(res.Failed), out.NotOurs+len(res.NotOurs)
		out.Applied = len(batch) - len(res.Failed) - len(res.NotOurs)
		failed = append(failed, res.Failed...)
		for _, id := range res.Failed {
			counts[[2]string{kindOf[id], "failed"}]++
		}
		for _, id := range res.NotOurs {
			counts[[2]string{kindOf[id], "not_ours"}]++
		}
		for _, e := range batch {
			counts[[2]string{e.Kind.DetailType, "applied"}]++
		}
		for _, id := range append(res.Failed, res.NotOurs...) {
			counts[[2]string{kindOf[id], "applied"}]--
		}
	}
	for kind, lag := range maxLag {
		p.metrics.Put(metrics.EventLag, float64(lag.Milliseconds()), metrics.Milliseconds, map[string]string{"Kind": kind})
	}
	for ko, n := range counts {
		if n > 0 {
			p.metrics.Put(metrics.EventsProcessed, float64(n), metrics.Count, map[string]string{"Kind": ko[0], "Outcome": ko[1]})
		}
	}
	p.log.Info("event batch", "messages", len(msgs), "applied", out.Applied, "failed", out.Failed,
		"not_ours", out.NotOurs, "unknown", out.Unknown, "unparsable", out.Unparsable)
	return failed, out
}

// SQSHandler is the Lambda entry point for an SQS event source with
// ReportBatchItemFailures enabled (the local poller calls the same).
func (p *Processor) SQSHandler() func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		msgs := make([]Message, len(ev.Records))
		for i, r := range ev.Records {
			msgs[i] = Message{ID: r.MessageId, Body: r.Body, SentAt: SentTimestamp(r.Attributes)}
		}
		failed, _ := p.Process(ctx, msgs)
		res := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
		for _, id := range failed {
			res.BatchItemFailures = append(res.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
		}
		return res, nil
	}
}

// SentTimestamp reads an SQS message's SentTimestamp attribute (epoch
// milliseconds); zero when absent or malformed.
func SentTimestamp(attrs map[string]string) time.Time {
	ms, err := strconv.ParseInt(attrs["SentTimestamp"], 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Decode is a helper for parsers: unmarshal the detail into T.
func Decode[T any](env Envelope) (T, error) {
	var v T
	if err := json.Unmarshal(env.Detail, &v); err != nil {
		return v, fmt.Errorf("decode %s detail: %w", env.DetailType, err)
	}
	return v, nil
}
