package logs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/ceforge/ceforge/internal/logs"
	"github.com/ceforge/ceforge/internal/run"
)

// BenchmarkScenarioLogFollowLatency follows a running run with the
// production follow settings (1 s poll floor) over real HTTP, puts one line
// at a random moment each time the previous one arrived, and reports the
// time from PutLogEvents to the client receiving the line (p50, p99 over 30
// lines). It also reports GetLogEvents calls per follower-minute, counted
// during that active window (~30 s) and scaled to 60 s, and for an idle
// follower: IdleAfter shortened to 1 s so the back-off reaches its steady
// state (5 s interval) quickly, counted over 15 s once there, scaled to 60 s.
func BenchmarkScenarioLogFollowLatency(b *testing.B) {
	f := newFixture(b, logs.Options{})
	r := f.createRun(b, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "bench-follow"})
	f.ensureStream(b, testGroup, "bench-follow")
	ch, stop := f.followStream(b, r.ID, "")
	defer stop()
	drainUntil := func(msg string, timeout time.Duration) bool {
		deadline := time.After(timeout)
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					return false
				}
				if ev.Name == "line" && decodeLine(b, ev).Message == msg {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}

	const n = 30
	lat := make([]time.Duration, 0, n)
	f.h.Calls.Reset()
	windowStart := time.Now()
	b.ResetTimer()
	for i := 0; i < n; i++ {
		time.Sleep(time.Duration(rand.Int64N(int64(time.Second)))) // random phase against the poll
		msg := fmt.Sprintf("bench line %d", i)
		start := time.Now()
		_, err := f.cwl.PutLogEvents(context.Background(), &cloudwatchlogs.PutLogEventsInput{
			LogGroupName: aws.String(testGroup), LogStreamName: aws.String("bench-follow"),
			LogEvents: []cwtypes.InputLogEvent{{Timestamp: aws.Int64(start.UnixMilli()), Message: aws.String(msg)}}})
		if err != nil {
			b.Fatal(err)
		}
		if !drainUntil(msg, 20*time.Second) {
			b.Fatalf("line %d never arrived", i)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	active := float64(getLogEventsCalls(f)) / time.Since(windowStart).Minutes()
	stop()

	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "follow_p50_ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "follow_p99_ms")
	b.ReportMetric(active, "getlogevents_calls/follower_min")
	b.ReportMetric(idleCallsPerMinute(b), "idle_getlogevents_calls/follower_min")
	b.ReportMetric(0, "ns/op")
}

func idleCallsPerMinute(b *testing.B) float64 {
	f := newFixture(b, logs.Options{IdleAfter: time.Second})
	r := f.createRun(b, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "bench-idle"})
	f.ensureStream(b, testGroup, "bench-idle")
	ch, stop := f.followStream(b, r.ID, "")
	defer stop()
	go func() {
		for range ch {
		}
	}()
	// Back-off: 1 s for IdleAfter, then 1.5x per empty poll up to 5 s.
	time.Sleep(8 * time.Second)
	f.h.Calls.Reset()
	const window = 15 * time.Second
	time.Sleep(window)
	return float64(getLogEventsCalls(f)) / window.Minutes()
}

// BenchmarkScenarioLogPage10k times serving one 10,000-line page (the
// largest page: one GetLogEvents call's worth) over HTTP, from request to
// the last byte read, median of 5; lines are ~110-byte Nextflow-like lines.
func BenchmarkScenarioLogPage10k(b *testing.B) {
	f := newFixture(b, logs.Options{})
	r := f.createRun(b, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "bench-page"})
	f.ensureStream(b, testGroup, "bench-page")
	base := time.Now().Add(-time.Hour).UnixMilli()
	evs := make([]cwtypes.InputLogEvent, 0, 10000)
	pad := strings.Repeat("-", 40)
	for i := range 10000 {
		evs = append(evs, cwtypes.InputLogEvent{Timestamp: aws.Int64(base + int64(i)),
			Message: aws.String(fmt.Sprintf("[%06d] process > NFCORE_RNASEQ:RNASEQ:FASTQC (sample_%d) %s [100%%]", i, i, pad))})
	}
	for i := 0; i < len(evs); i += 5000 { // PutLogEvents takes at most 1 MB per call
		_, err := f.cwl.PutLogEvents(context.Background(), &cloudwatchlogs.PutLogEventsInput{
			LogGroupName: aws.String(testGroup), LogStreamName: aws.String("bench-page"), LogEvents: evs[i : i+5000]})
		if err != nil {
			b.Fatal(err)
		}
	}
	const reps = 5
	times := make([]time.Duration, 0, reps)
	var size int
	b.ResetTimer()
	for range reps {
		start := time.Now()
		res, err := http.Get(f.srv.URL + "/runs/" + r.ID + "/logs?limit=10000")
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("status %d: %v", res.StatusCode, err)
		}
		times = append(times, time.Since(start))
		var p logs.Page
		if err := json.Unmarshal(body, &p); err != nil || len(p.Lines) != 10000 {
			b.Fatalf("page has %d lines (%v)", len(p.Lines), err)
		}
		size = len(body)
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[reps/2].Microseconds())/1000, "page10k_ms")
	b.ReportMetric(float64(size)/1024, "page10k_KiB")
	b.ReportMetric(0, "ns/op")
}
