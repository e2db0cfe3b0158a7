package logs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/handlers"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/logs"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const testGroup = "/ceforge/runs"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture is the wired functions plus a logs router with test options, served
// over real HTTP so follow mode streams.
type fixture struct {
	h      *apptest.Harness
	svc    *logs.Service
	router *api.Router
	srv    *httptest.Server
	cwl    *cloudwatchlogs.Client
}

func newFixture(t testing.TB, o logs.Options) *fixture {
	t.Helper()
	h := apptest.New(t)
	// The app's own logs routes (used by getPage through h.Do) sign cursors
	// with this key; the test service must accept them and vice versa.
	o.CursorKey = h.Logs.CursorKey
	// The logs function's code, with its clients (IAM-checked as logs).
	fn := h.Logs
	svc := logs.New(logs.Deps{Runs: fn.Runs, CEs: fn.ComputeEnvs, AWS: fn.AWS, Log: quiet, Leases: fn.Store}, o)
	rt := handlers.New(handlers.Deps{ComputeEnvs: fn.ComputeEnvs, Runs: fn.Runs, Log: quiet, Extra: []func(*api.Router){svc.Routes}})
	srv := httptest.NewServer(api.LocalIdentity(rt, apptest.Caller))
	t.Cleanup(srv.Close)
	return &fixture{h: h, svc: svc, router: rt, srv: srv, cwl: cloudwatchlogs.NewFromConfig(h.AWS.Config(""))}
}

// createRun stores a run record directly (platforms are not needed to test logs).
func (f *fixture) createRun(t testing.TB, status string, ref *run.LogRef, mutate ...func(*run.Run)) *run.Run {
	t.Helper()
	now := time.Now().UTC()
	r := run.Run{ID: ids.New(), Kind: run.KindPipeline, Platform: "aws-cloud", RunName: "logs-test",
		WorkDir: "s3://ceforge-test-bucket/work", Status: status, Logs: ref, CreatedAt: now}
	r.Timeline.Submitted = &now
	if run.Terminal(status) {
		done := now.Add(-time.Minute)
		r.Timeline.Completed = &done
	}
	for _, m := range mutate {
		m(&r)
	}
	require.NoError(t, f.h.Store.Create(context.Background(), store.KindRun, r.ID, r, store.WithStatusRank(run.Rank(status))))
	return &r
}

// setStatus moves a run to status (as the event handlers would).
func (f *fixture) setStatus(t testing.TB, id, status string) {
	t.Helper()
	set := map[string]any{}
	if run.Terminal(status) {
		set["timeline.completed"] = time.Now().UTC()
	}
	ok, err := f.h.Store.Transition(context.Background(), store.KindRun, id, store.Move{Status: status, Rank: run.Rank(status), Revisable: run.Revisable(status), At: time.Now(), Set: set})
	require.NoError(t, err)
	require.True(t, ok)
}

func (f *fixture) ensureStream(t testing.TB, group, stream string) {
	t.Helper()
	ctx := context.Background()
	_, err := f.cwl.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)})
	var exists *cwtypes.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		require.NoError(t, err)
	}
	_, err = f.cwl.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)})
	if err != nil && !errors.As(err, &exists) {
		require.NoError(t, err)
	}
}

// putLines writes lines "line <i>" for i in [from, to) with increasing timestamps.
func (f *fixture) putLines(t testing.TB, group, stream string, from, to int) {
	t.Helper()
	require.NoError(t, f.putLinesE(group, stream, from, to))
}

// putLinesE is putLines for goroutines other than the test's.
func (f *fixture) putLinesE(group, stream string, from, to int) error {
	base := time.Now().Add(-time.Hour).UnixMilli()
	for start := from; start < to; start += 5000 {
		end := min(to, start+5000)
		evs := make([]cwtypes.InputLogEvent, 0, end-start)
		for i := start; i < end; i++ {
			evs = append(evs, cwtypes.InputLogEvent{Timestamp: aws.Int64(base + int64(i)), Message: aws.String(lineText(i))})
		}
		_, err := f.cwl.PutLogEvents(context.Background(), &cloudwatchlogs.PutLogEventsInput{
			LogGroupName: aws.String(group), LogStreamName: aws.String(stream), LogEvents: evs})
		if err != nil {
			return fmt.Errorf("put log events: %w", err)
		}
	}
	return nil
}

func lineText(i int) string { return fmt.Sprintf("line %06d", i) }

// getPage reads one page over HTTP.
func (f *fixture) getPage(t testing.TB, id, cursor string, limit int) (int, logs.Page, []byte) {
	t.Helper()
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	res := f.h.Do(t, "GET", "/runs/"+id+"/logs?"+q.Encode(), nil)
	var p logs.Page
	if res.Status == 200 {
		res.JSON(t, &p)
	}
	return res.Status, p, res.Body
}

// sseEvent is one server-sent event.
type sseEvent struct {
	Name, ID, Data string
	Comment        bool
}

// followStream opens a follow request and returns its events on a channel
// (closed when the stream ends) and a func that disconnects.
func (f *fixture) followStream(t testing.TB, id, cursor string, header ...string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := f.srv.URL + "/runs/" + id + "/logs?follow=true"
	if cursor != "" {
		u += "&cursor=" + url.QueryEscape(cursor)
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	ch := make(chan sseEvent, 1024)
	go func() {
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" || ev.Comment {
					select {
					case ch <- ev:
					case <-ctx.Done():
						return
					}
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.Comment = true
			case strings.HasPrefix(line, "event: "):
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch, cancel
}

func decodeLine(t testing.TB, ev sseEvent) logs.Line {
	t.Helper()
	var l logs.Line
	require.NoError(t, json.Unmarshal([]byte(ev.Data), &l))
	return l
}
