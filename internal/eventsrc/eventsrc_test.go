package eventsrc

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/metrics"
)

type recordingSink struct {
	got  []Event
	fail map[string]bool
}

func (s *recordingSink) Apply(_ context.Context, evs []Event) []string {
	s.got = append(s.got, evs...)
	var failed []string
	for _, e := range evs {
		if s.fail[e.MessageID] {
			failed = append(failed, e.MessageID)
		}
	}
	return failed
}

type detail struct {
	Queue string `json:"queue"`
}

var testKind = Kind{Source: "aws.test", DetailType: "Thing Changed"}

func body(source, detailType, queue string) string {
	b, _ := json.Marshal(map[string]any{"version": "0", "id": "e", "source": source, "detail-type": detailType,
		"time": "2026-01-01T00:00:00Z", "detail": map[string]string{"queue": queue}})
	return string(b)
}

func TestProcessOutcomes(t *testing.T) {
	sink := &recordingSink{fail: map[string]bool{"m5": true}}
	p := NewProcessor(nil, metrics.Discard)
	p.Handle(sink, map[Kind]Parser{testKind: func(env Envelope) (any, error) {
		d, err := Decode[detail](env)
		if err != nil {
			return nil, err
		}
		if d.Queue != "ours" {
			return nil, ErrNotOurs
		}
		return d, nil
	}})
	failed, out := p.Process(context.Background(), []Message{
		{ID: "m1", Body: "not json"},
		{ID: "m2", Body: body("aws.other", "X", "ours")},
		{ID: "m3", Body: body("aws.test", "Thing Changed", "theirs")},
		{ID: "m4", Body: body("aws.test", "Thing Changed", "ours")},
		{ID: "m5", Body: body("aws.test", "Thing Changed", "ours")},
		{ID: "m6", Body: `{"source":"aws.test","detail-type":"Thing Changed","detail":"not an object"}`},
	})
	require.Equal(t, []string{"m5"}, failed, "only the failed item is retried")
	require.Equal(t, Outcome{Unparsable: 2, Unknown: 1, NotOurs: 1, Applied: 1, Failed: 1}, out)
	require.Len(t, sink.got, 2)
	require.Equal(t, detail{Queue: "ours"}, sink.got[0].Value)
	require.Equal(t, testKind, sink.got[0].Kind)
}

func TestSQSHandlerReportsBatchItemFailures(t *testing.T) {
	sink := &recordingSink{fail: map[string]bool{"b": true}}
	p := NewProcessor(nil, metrics.Discard)
	p.Handle(sink, map[Kind]Parser{testKind: func(env Envelope) (any, error) { return nil, nil }})
	res, err := p.SQSHandler()(context.Background(), events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "a", Body: body("aws.test", "Thing Changed", "x")},
		{MessageId: "b", Body: body("aws.test", "Thing Changed", "x")},
	}})
	require.NoError(t, err)
	require.Equal(t, []events.SQSBatchItemFailure{{ItemIdentifier: "b"}}, res.BatchItemFailures)
}

func TestNoSinkDropsEverything(t *testing.T) {
	p := NewProcessor(nil, metrics.Discard)
	failed, out := p.Process(context.Background(), []Message{{ID: "a", Body: body("aws.test", "Thing Changed", "x")}})
	require.Empty(t, failed)
	require.Equal(t, 1, out.Unknown)
	require.False(t, errors.Is(nil, ErrNotOurs))
}
