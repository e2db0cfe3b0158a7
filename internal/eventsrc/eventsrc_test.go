package eventsrc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/metrics"
)

type recordingSink struct {
	got     []Event
	fail    map[string]bool
	notOurs map[string]bool
}

func (s *recordingSink) Apply(_ context.Context, evs []Event) Result {
	s.got = append(s.got, evs...)
	var res Result
	for _, e := range evs {
		switch {
		case s.fail[e.MessageID]:
			res.Failed = append(res.Failed, e.MessageID)
		case s.notOurs[e.MessageID]:
			res.NotOurs = append(res.NotOurs, e.MessageID)
		}
	}
	return res
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

func testParser(env Envelope) (any, error) {
	d, err := Decode[detail](env)
	if err != nil {
		return nil, err
	}
	if d.Queue != "ours" {
		return nil, ErrNotOurs
	}
	return d, nil
}

// TestProcessOutcomes: every message ends in one outcome; messages that
// cannot be decoded are failed (retried, then dead-lettered), never dropped.
func TestProcessOutcomes(t *testing.T) {
	sink := &recordingSink{fail: map[string]bool{"m5": true}, notOurs: map[string]bool{"m7": true}}
	p := NewProcessor(nil, metrics.Discard)
	p.Handle(sink, map[Kind]Parser{testKind: testParser})
	failed, out := p.Process(context.Background(), []Message{
		{ID: "m1", Body: "not json"},
		{ID: "m2", Body: body("aws.other", "X", "ours")},
		{ID: "m3", Body: body("aws.test", "Thing Changed", "theirs")},
		{ID: "m4", Body: body("aws.test", "Thing Changed", "ours")},
		{ID: "m5", Body: body("aws.test", "Thing Changed", "ours")},
		{ID: "m6", Body: `{"source":"aws.test","detail-type":"Thing Changed","detail":"not an object"}`},
		{ID: "m7", Body: body("aws.test", "Thing Changed", "ours")},
		{ID: "m8", Body: `{"detail":{}}`},
	})
	require.ElementsMatch(t, []string{"m1", "m5", "m6", "m8"}, failed, "undecodable and failed messages are retried")
	require.Equal(t, Outcome{Unparsable: 3, Unknown: 1, NotOurs: 2, Applied: 1, Failed: 1}, out)
	require.Len(t, sink.got, 3)
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
		{MessageId: "c", Body: "{"},
	}})
	require.NoError(t, err)
	require.ElementsMatch(t, []events.SQSBatchItemFailure{{ItemIdentifier: "b"}, {ItemIdentifier: "c"}}, res.BatchItemFailures)
}

func TestNoSinkDropsEverything(t *testing.T) {
	p := NewProcessor(nil, metrics.Discard)
	failed, out := p.Process(context.Background(), []Message{{ID: "a", Body: body("aws.test", "Thing Changed", "x")}})
	require.Empty(t, failed)
	require.Equal(t, 1, out.Unknown)
	require.False(t, errors.Is(nil, ErrNotOurs))
}

// TestEventTimeFallsBackToReceiveTime: a time that is missing or not RFC
// 3339 (AWS's documented Spot sample says "yyyy-mm-ddThh:mm:ssZ") is
// replaced by the SQS SentTimestamp, or the processor's clock without it;
// a missing version is fine.
func TestEventTimeFallsBackToReceiveTime(t *testing.T) {
	sent := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	clock := time.Date(2026, 3, 4, 5, 7, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, time string
		sentAttr   string
		want       time.Time
		received   bool
	}{
		{"rfc3339", `"2026-01-02T03:04:05Z"`, "", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), false},
		{"fractional", `"2026-01-02T03:04:05.25+01:00"`, "", time.Date(2026, 1, 2, 2, 4, 5, 250_000_000, time.UTC), false},
		{"placeholder", `"yyyy-mm-ddThh:mm:ssZ"`, "1772600767890", sent, true},
		{"not a string", `12345`, "1772600767890", sent, true},
		{"missing, no sent timestamp", ``, "", clock, true},
		{"bad sent timestamp", `"tomorrow"`, "soon", clock, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields := `"id":"x","source":"aws.test","detail-type":"Thing Changed","detail":{"queue":"ours"}`
			if tc.time != "" {
				fields += `,"time":` + tc.time
			}
			sink := &recordingSink{}
			p := NewProcessor(nil, metrics.Discard)
			p.now = func() time.Time { return clock }
			p.Handle(sink, map[Kind]Parser{testKind: testParser})
			attrs := map[string]string{}
			if tc.sentAttr != "" {
				attrs["SentTimestamp"] = tc.sentAttr
			}
			res, err := p.SQSHandler()(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m", Body: "{" + fields + "}", Attributes: attrs}}})
			require.NoError(t, err)
			require.Empty(t, res.BatchItemFailures)
			require.Len(t, sink.got, 1)
			require.True(t, tc.want.Equal(sink.got[0].Envelope.Time), "time %s, want %s", sink.got[0].Envelope.Time, tc.want)
			require.Equal(t, tc.received, sink.got[0].Envelope.TimeReceived)
			require.Empty(t, sink.got[0].Envelope.Version)
		})
	}
}

// TestMetricsCarryKindAndOutcome: EventsProcessed has the dimensions the
// dashboard queries, {Kind, Outcome}, for every outcome.
func TestMetricsCarryKindAndOutcome(t *testing.T) {
	var buf bytes.Buffer
	sink := &recordingSink{fail: map[string]bool{"m5": true}, notOurs: map[string]bool{"m6": true}}
	p := NewProcessor(nil, metrics.New(&buf))
	p.Handle(sink, map[Kind]Parser{testKind: testParser})
	p.Process(context.Background(), []Message{
		{ID: "m1", Body: "not json"},
		{ID: "m2", Body: body("aws.other", "X", "ours")},
		{ID: "m3", Body: body("aws.test", "Thing Changed", "theirs")},
		{ID: "m4", Body: body("aws.test", "Thing Changed", "ours")},
		{ID: "m5", Body: body("aws.test", "Thing Changed", "ours")},
		{ID: "m6", Body: body("aws.test", "Thing Changed", "ours")},
	})
	got := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		if _, ok := rec[metrics.EventsProcessed]; !ok {
			continue
		}
		dims := rec["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)["Dimensions"].([]any)[0].([]any)
		var names []string
		for _, d := range dims {
			names = append(names, d.(string))
		}
		sort.Strings(names)
		require.Equal(t, []string{"Kind", "Outcome"}, names)
		got[rec["Kind"].(string)+"/"+rec["Outcome"].(string)] = rec[metrics.EventsProcessed].(float64)
	}
	require.Equal(t, map[string]float64{
		KindUndecodable + "/unparsable": 1, KindOther + "/unknown": 1,
		"Thing Changed/not_ours": 2, "Thing Changed/applied": 1, "Thing Changed/failed": 1,
	}, got)
}
