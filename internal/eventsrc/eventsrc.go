// Package eventsrc turns EventBridge events, delivered through SQS, into
// typed domain events. One parser per event kind is registered by
// {source, detail-type}; the envelope is decoded once; every message ends in
// an explicit outcome: dropped (unparsable or not ours), done, or failed
// (reported as a batch item failure so only that message is retried).
package eventsrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	Time       time.Time       `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
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

// Sink applies a batch of decoded events and returns the message ids that
// failed and must be retried. Sinks see the whole batch so they can
// aggregate (one store write per run per batch).
type Sink interface {
	Apply(ctx context.Context, events []Event) (failed []string)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, events []Event) []string

// Apply implements Sink.
func (f SinkFunc) Apply(ctx context.Context, events []Event) []string { return f(ctx, events) }

// Outcome counts what happened to a batch.
type Outcome struct {
	Unparsable, Unknown, NotOurs, Applied, Failed int
}

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

// Process handles a batch and returns the ids of messages to retry.
func (p *Processor) Process(ctx context.Context, msgs []Message) ([]string, Outcome) {
	var out Outcome
	batch := make([]Event, 0, len(msgs))
	maxLag := map[string]time.Duration{} // per detail type: one metric per batch, not per event
	now := p.now()
	for _, m := range msgs {
		var env Envelope
		if err := json.Unmarshal([]byte(m.Body), &env); err != nil || env.Source == "" || env.DetailType == "" {
			out.Unparsable++
			p.log.Warn("dropping unparsable event", "message_id", m.ID)
			continue
		}
		k := Kind{env.Source, env.DetailType}
		parse, ok := p.parsers[k]
		if !ok || p.sink == nil {
			out.Unknown++
			p.log.Info("dropping event of unknown kind", "message_id", m.ID, "kind", k.String())
			continue
		}
		v, err := parse(env)
		if errors.Is(err, ErrNotOurs) {
			out.NotOurs++
			continue
		}
		if err != nil {
			out.Unparsable++
			p.log.Warn("dropping event with unparsable detail", "message_id", m.ID, "kind", k.String(), "error", err.Error())
			continue
		}
		if !env.Time.IsZero() {
			if lag := now.Sub(env.Time); lag > maxLag[k.DetailType] {
				maxLag[k.DetailType] = lag
			}
		}
		batch = append(batch, Event{MessageID: m.ID, Kind: k, Envelope: env, Value: v})
	}
	var failed []string
	if len(batch) > 0 {
		failed = p.sink.Apply(ctx, batch)
	}
	out.Failed = len(failed)
	out.Applied = len(batch) - len(failed)
	for kind, lag := range maxLag {
		p.metrics.Put(metrics.EventLag, float64(lag.Milliseconds()), metrics.Milliseconds, map[string]string{"Kind": kind})
	}
	for name, n := range map[string]int{"applied": out.Applied, "failed": out.Failed, "not_ours": out.NotOurs, "unknown": out.Unknown, "unparsable": out.Unparsable} {
		if n > 0 {
			p.metrics.Put(metrics.EventsProcessed, float64(n), metrics.Count, map[string]string{"Outcome": name})
		}
	}
	p.log.Info("event batch", "messages", len(msgs), "applied", out.Applied, "failed", out.Failed,
		"not_ours", out.NotOurs, "unknown", out.Unknown, "unparsable", out.Unparsable)
	return failed, out
}

// SQSHandler is the Lambda entry point for an SQS event source with
// ReportBatchItemFailures enabled.
func (p *Processor) SQSHandler() func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		msgs := make([]Message, len(ev.Records))
		for i, r := range ev.Records {
			msgs[i] = Message{ID: r.MessageId, Body: r.Body}
		}
		failed, _ := p.Process(ctx, msgs)
		var res events.SQSEventResponse
		for _, id := range failed {
			res.BatchItemFailures = append(res.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
		}
		return res, nil
	}
}

// Decode is a helper for parsers: unmarshal the detail into T.
func Decode[T any](env Envelope) (T, error) {
	var v T
	if err := json.Unmarshal(env.Detail, &v); err != nil {
		return v, fmt.Errorf("decode %s detail: %w", env.DetailType, err)
	}
	return v, nil
}
