package logs_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/handlers"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/logs"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
)

// fastFollow are follow options for tests: milliseconds instead of seconds.
var fastFollow = logs.Options{
	PollInterval: 20 * time.Millisecond, IdleAfter: 200 * time.Millisecond, MaxIdleInterval: 60 * time.Millisecond,
	Heartbeat: 100 * time.Millisecond, MaxFollow: 30 * time.Second, RunRefresh: 50 * time.Millisecond,
	Settle: 100 * time.Millisecond,
}

func TestPagesReturnEveryLineOnceInOrder(t *testing.T) {
	f := newFixture(t, logs.Options{})
	r := f.createRun(t, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "run-a"})
	f.ensureStream(t, testGroup, "run-a")
	f.putLines(t, testGroup, "run-a", 0, 2500)

	var got []string
	readAll := func(cursor string) string {
		for range 100 {
			// Through the app's own router (h.Do): the routes are wired by platform_logs.go.
			status, p, body := f.getPage(t, r.ID, cursor, 700)
			require.Equal(t, 200, status, string(body))
			require.Equal(t, r.ID, p.RunID)
			require.Equal(t, run.StatusRunning, p.Status)
			require.True(t, p.Producing)
			require.NotEmpty(t, p.NextCursor)
			require.LessOrEqual(t, len(p.Lines), 700)
			cursor = p.NextCursor
			if len(p.Lines) == 0 {
				return cursor
			}
			for _, l := range p.Lines {
				got = append(got, l.Message)
				require.False(t, l.Timestamp.IsZero())
			}
		}
		t.Fatal("paging did not end")
		return ""
	}
	cursor := readAll("")
	requireSequence(t, got, 0, 2500)

	// The end-of-stream cursor resumes exactly where it stopped.
	f.putLines(t, testGroup, "run-a", 2500, 2800)
	got = nil
	cursor = readAll(cursor)
	requireSequence(t, got, 2500, 2800)

	// A page of 10,000 lines is one call.
	f.putLines(t, testGroup, "run-a", 2800, 12800)
	f.h.Calls.Reset()
	status, p, _ := f.getPage(t, r.ID, cursor, logs.MaxPageLimit)
	require.Equal(t, 200, status)
	require.Len(t, p.Lines, 10000)
	require.Equal(t, lineText(2800), p.Lines[0].Message)
	require.Equal(t, 1, getLogEventsCalls(f))
}

func requireSequence(t *testing.T, got []string, from, to int) {
	t.Helper()
	require.Len(t, got, to-from)
	for i, m := range got {
		if m != lineText(from+i) {
			require.Equal(t, lineText(from+i), m, "line %d", i)
		}
	}
}

func getLogEventsCalls(f *fixture) int {
	n := 0
	for op, c := range f.h.Calls.Snapshot() {
		if strings.HasSuffix(op, ".GetLogEvents") {
			n += c
		}
	}
	return n
}

func TestRunNotStartedReturnsEmptyPage(t *testing.T) {
	f := newFixture(t, logs.Options{})
	tests := []struct {
		name string
		ref  *run.LogRef
	}{
		{"no log location yet", nil},
		{"stream not created yet", &run.LogRef{Group: testGroup, Stream: "not-yet"}},
		{"group not created yet", &run.LogRef{Group: "/ceforge/absent", Stream: "not-yet"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.createRun(t, run.StatusSubmitted, tc.ref)
			status, p, body := f.getPage(t, r.ID, "", 0)
			require.Equal(t, 200, status, string(body))
			require.Equal(t, run.StatusSubmitted, p.Status)
			require.Empty(t, p.Lines)
			require.NotNil(t, p.Lines, "lines is [] not null")
			require.True(t, p.Producing)
			require.NotEmpty(t, p.NextCursor)
			require.Contains(t, string(body), `"lines":[]`)
		})
	}

	// Once the head writes, the cursor of the empty page reads from the start.
	r := f.createRun(t, run.StatusSubmitted, &run.LogRef{Group: testGroup, Stream: "later"})
	_, p, _ := f.getPage(t, r.ID, "", 0)
	f.ensureStream(t, testGroup, "later")
	f.putLines(t, testGroup, "later", 0, 5)
	_, p, _ = f.getPage(t, r.ID, p.NextCursor, 0)
	require.Len(t, p.Lines, 5)
	require.Equal(t, lineText(0), p.Lines[0].Message)
}

func TestLogsRequestValidation(t *testing.T) {
	f := newFixture(t, logs.Options{})
	a := f.createRun(t, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "a"})
	b := f.createRun(t, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "b"})
	f.ensureStream(t, testGroup, "a")
	f.putLines(t, testGroup, "a", 0, 3)
	_, pa, _ := f.getPage(t, a.ID, "", 0)
	tampered := []byte(pa.NextCursor)
	tampered[3] ^= 1
	// A cursor signed with the key ceforge once derived from its table and
	// prefix (names anyone can read): valid in form, forged in fact.
	forged := forgeCursor(t, a.ID, f.h.Config.Table, f.h.Config.Prefix)

	tests := []struct {
		name, path      string
		status          int
		code, field     string
		messageContains string
	}{
		{"cursor of another run", "/runs/" + b.ID + "/logs?cursor=" + pa.NextCursor, 400, "invalid_field", "cursor", "another run"},
		{"garbage cursor", "/runs/" + a.ID + "/logs?cursor=abc", 400, "invalid_field", "cursor", "not valid"},
		{"tampered cursor", "/runs/" + a.ID + "/logs?cursor=" + string(tampered), 400, "invalid_field", "cursor", "not valid"},
		{"cursor signed with a name-derived key", "/runs/" + a.ID + "/logs?cursor=" + forged, 400, "invalid_field", "cursor", "not valid"},
		{"forged cursor in follow", "/runs/" + a.ID + "/logs?follow=true&cursor=" + forged, 400, "invalid_field", "cursor", "not valid"},
		{"cursor of another run in follow", "/runs/" + b.ID + "/logs?follow=true&cursor=" + pa.NextCursor, 400, "invalid_field", "cursor", "another run"},
		{"unknown parameter", "/runs/" + a.ID + "/logs?tail=1", 400, "unknown_parameter", "tail", ""},
		{"limit zero", "/runs/" + a.ID + "/logs?limit=0", 400, "invalid_parameter", "limit", "10000"},
		{"limit too big", "/runs/" + a.ID + "/logs?limit=10001", 400, "invalid_parameter", "limit", ""},
		{"limit not a number", "/runs/" + a.ID + "/logs?limit=ten", 400, "invalid_parameter", "limit", ""},
		{"limit with follow", "/runs/" + a.ID + "/logs?follow=true&limit=5", 400, "invalid_parameter", "limit", ""},
		{"follow not a bool", "/runs/" + a.ID + "/logs?follow=maybe", 400, "invalid_parameter", "follow", ""},
		{"unknown run", "/runs/" + ids.New() + "/logs", 404, "not_found", "", ""},
		{"malformed run id", "/runs/NOPE/logs", 404, "not_found", "", ""},
		{"download unknown parameter", "/runs/" + a.ID + "/logs/download?x=1", 400, "unknown_parameter", "x", ""},
		{"download unknown run", "/runs/" + ids.New() + "/logs/download", 404, "not_found", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := f.h.Do(t, "GET", tc.path, nil)
			require.Equal(t, tc.status, res.Status, string(res.Body))
			code, field, msg := res.Error(t)
			require.Equal(t, tc.code, code)
			require.Equal(t, tc.field, field)
			require.Contains(t, msg, tc.messageContains)
		})
	}
}

// forgeCursor signs a cursor of runID with the key older versions derived
// from the table and prefix.
func forgeCursor(t *testing.T, runID string, parts ...string) string {
	t.Helper()
	h := sha256.New()
	h.Write([]byte("ceforge/logs/cursor/v1"))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	body, err := json.Marshal(map[string]any{"v": 1, "r": runID})
	require.NoError(t, err)
	b := base64.RawURLEncoding.EncodeToString(body)
	m := hmac.New(sha256.New, h.Sum(nil))
	m.Write([]byte(b))
	return b + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// TestFollowDeliversEveryLineOnceAcrossReconnects follows a run while its
// head writes thousands of lines, disconnecting in the middle of batches and
// resuming from the last id received (by query cursor and by
// Last-Event-ID), until the run ends.
func TestFollowDeliversEveryLineOnceAcrossReconnects(t *testing.T) {
	f := newFixture(t, fastFollow)
	const total = 3000
	r := f.createRun(t, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "live"})
	f.ensureStream(t, testGroup, "live")
	f.putLines(t, testGroup, "live", 0, 200) // some backlog before anyone follows

	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		for i := 200; i < total; i += 140 {
			if err := f.putLinesE(testGroup, "live", i, min(total, i+140)); err != nil {
				t.Error(err)
				break
			}
			time.Sleep(15 * time.Millisecond)
		}
		// The run ends either way, so the follower below always finishes.
		if _, err := f.h.Store.Transition(context.Background(), store.KindRun, r.ID, store.Move{Status: run.StatusSucceeded,
			Rank: run.Rank(run.StatusSucceeded), At: time.Now(), Set: map[string]any{"timeline.completed": time.Now().UTC()}}); err != nil {
			t.Error(err)
		}
	}()

	var got []string
	cursor := ""
	// Disconnect after these many lines of each connection (odd numbers,
	// so it happens in the middle of a batch); the last connection runs to the end.
	cuts := []int{1, 333, 917, 5}
	sawEnd := false
	for conn := 0; !sawEnd; conn++ {
		require.Less(t, conn, 20, "too many connections")
		var ch <-chan sseEvent
		var stop func()
		if conn%2 == 1 {
			ch, stop = f.followStream(t, r.ID, "", "Last-Event-ID", cursor)
		} else {
			ch, stop = f.followStream(t, r.ID, cursor)
		}
		n := 0
		for ev := range ch {
			if ev.Name == "line" {
				got = append(got, decodeLine(t, ev).Message)
				cursor = ev.ID
				n++
				if conn < len(cuts) && n == cuts[conn] {
					break
				}
			}
			if ev.Name == "end" {
				var end logs.EndEvent
				require.NoError(t, json.Unmarshal([]byte(ev.Data), &end))
				require.Equal(t, logs.EndRunEnded, end.Reason)
				require.Equal(t, run.StatusSucceeded, end.Status)
				require.NotEmpty(t, end.NextCursor)
				sawEnd = true
			}
		}
		stop()
	}
	<-producerDone
	requireSequence(t, got, 0, total)
}

func TestFollowHeartbeatsAndEndsAtTimeBound(t *testing.T) {
	o := fastFollow
	o.MaxFollow = 400 * time.Millisecond
	o.Heartbeat = 50 * time.Millisecond
	f := newFixture(t, o)
	r := f.createRun(t, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "quiet"})
	f.ensureStream(t, testGroup, "quiet")
	f.putLines(t, testGroup, "quiet", 0, 2)

	ch, stop := f.followStream(t, r.ID, "")
	defer stop()
	var lines, heartbeats int
	var end logs.EndEvent
	for ev := range ch {
		switch {
		case ev.Comment:
			heartbeats++
		case ev.Name == "line":
			lines++
		case ev.Name == "end":
			require.NoError(t, json.Unmarshal([]byte(ev.Data), &end))
		}
	}
	require.Equal(t, 2, lines)
	require.GreaterOrEqual(t, heartbeats, 3)
	require.Equal(t, logs.EndTimeout, end.Reason)
	require.Equal(t, run.StatusRunning, end.Status)

	// The end cursor resumes after the last line.
	f.putLines(t, testGroup, "quiet", 2, 4)
	_, p, _ := f.getPage(t, r.ID, end.NextCursor, 0)
	require.Len(t, p.Lines, 2)
	require.Equal(t, lineText(2), p.Lines[0].Message)
}

func TestFollowBacksOffWhenIdle(t *testing.T) {
	o := fastFollow
	o.PollInterval = 10 * time.Millisecond
	o.IdleAfter = 50 * time.Millisecond
	o.MaxIdleInterval = 100 * time.Millisecond
	o.MaxFollow = time.Second
	f := newFixture(t, o)
	r := f.createRun(t, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "idle"})
	f.ensureStream(t, testGroup, "idle")
	f.h.Calls.Reset()
	ch, stop := f.followStream(t, r.ID, "")
	defer stop()
	for range ch {
	}
	// Without back-off: ~100 calls in 1 s at 10 ms; with it, the interval
	// grows to 100 ms after 50 ms idle.
	calls := getLogEventsCalls(f)
	require.Greater(t, calls, 3)
	require.Less(t, calls, 30)
}

func TestFollowEndsForFinishedRunAndNeverStartedRun(t *testing.T) {
	f := newFixture(t, fastFollow)
	done := f.createRun(t, run.StatusFailed, &run.LogRef{Group: testGroup, Stream: "done"})
	f.ensureStream(t, testGroup, "done")
	f.putLines(t, testGroup, "done", 0, 10)
	never := f.createRun(t, run.StatusCancelled, nil)

	for _, tc := range []struct {
		id    string
		lines int
	}{{done.ID, 10}, {never.ID, 0}} {
		ch, stop := f.followStream(t, tc.id, "")
		var lines int
		var end logs.EndEvent
		for ev := range ch {
			if ev.Name == "line" {
				lines++
			}
			if ev.Name == "end" {
				require.NoError(t, json.Unmarshal([]byte(ev.Data), &end))
			}
		}
		stop()
		require.Equal(t, tc.lines, lines)
		require.Equal(t, logs.EndRunEnded, end.Reason)
	}
}

func TestDownloadRedirectsToPresignedNextflowLog(t *testing.T) {
	f := newFixture(t, logs.Options{})
	ctx := context.Background()
	// A CE with a role (registered credentials): the log is read in the
	// user's account through it.
	cred, err := f.h.API.Credentials.Create(ctx, credential.CreateRequest{Name: "dl", RoleARN: "arn:aws:iam::123456789012:role/ceforge-access"}, "test")
	require.NoError(t, err)
	ce := computeenv.ComputeEnv{ID: ids.New(), Name: "dl", Platform: "aws-cloud", Region: "us-east-1",
		WorkDir: "s3://ceforge-dl-bucket/ce-work", Status: computeenv.StatusAvailable, CreatedAt: time.Now().UTC(),
		CredentialsID: cred.ID, Credentials: &computeenv.Credentials{RoleARN: cred.RoleARN, ExternalID: cred.ExternalID}}
	require.NoError(t, f.h.Store.Create(ctx, store.KindCE, ce.ID, ce))
	s3c := s3.NewFromConfig(f.h.AWS.Config(""), func(o *s3.Options) { o.UsePathStyle = true })
	_, err = s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("ceforge-dl-bucket")})
	require.NoError(t, err)

	withCE := func(r *run.Run) { r.ComputeEnvID = ce.ID; r.WorkDir = "s3://ceforge-dl-bucket/work/" }
	done := f.createRun(t, run.StatusSucceeded, nil, withCE)
	content := "Nov-23 18:00:00.000 [main] DEBUG nextflow.cli.Launcher\n" + strings.Repeat("x", 5000) + "\n"
	_, err = s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("ceforge-dl-bucket"),
		Key: aws.String("work/.ceforge/runs/" + done.ID + "/nextflow.log"), Body: strings.NewReader(content)})
	require.NoError(t, err)

	res := f.h.Do(t, "GET", "/runs/"+done.ID+"/logs/download", nil)
	require.Contains(t, []int{http.StatusTemporaryRedirect, http.StatusFound}, res.Status, string(res.Body))
	loc := res.Header.Get("Location")
	require.Contains(t, loc, "X-Amz-Expires=300")
	require.Contains(t, loc, "/ceforge-dl-bucket/work/.ceforge/runs/"+done.ID+"/nextflow.log")
	got, err := http.Get(loc)
	require.NoError(t, err)
	defer got.Body.Close()
	require.Equal(t, 200, got.StatusCode)
	body, _ := io.ReadAll(got.Body)
	require.Equal(t, content, string(body))

	// Over real HTTP a client follows the redirect to the content.
	direct, err := http.Get(f.srv.URL + "/runs/" + done.ID + "/logs/download")
	require.NoError(t, err)
	body, _ = io.ReadAll(direct.Body)
	direct.Body.Close()
	require.Equal(t, content, string(body))

	tests := []struct {
		name, status, code, msg string
		mutate                  func(*run.Run)
	}{
		{"still running", run.StatusRunning, "run_not_finished", "is RUNNING", withCE},
		{"finished without upload", run.StatusFailed, "log_not_uploaded", "no nextflow.log was uploaded", withCE},
		{"bucket absent", run.StatusCancelled, "log_not_uploaded", "no nextflow.log", func(r *run.Run) { r.WorkDir = "s3://ceforge-absent/w" }},
		{"work dir not S3", run.StatusSucceeded, "log_not_uploaded", "no S3 work directory", func(r *run.Run) { r.WorkDir = "/mnt/efs/work" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.createRun(t, tc.status, nil, tc.mutate)
			res := f.h.Do(t, "GET", "/runs/"+r.ID+"/logs/download", nil)
			require.Equal(t, 404, res.Status, string(res.Body))
			code, _, msg := res.Error(t)
			require.Equal(t, tc.code, code)
			require.Contains(t, msg, tc.msg)
		})
	}
}

// TestFunctionURLAdapter serves the router as the logs Lambda does: the
// caller's identity comes from the Function URL's IAM authorizer.
func TestFunctionURLAdapter(t *testing.T) {
	o := fastFollow
	o.FollowURL = "https://abc.lambda-url.us-east-1.on.aws/"
	f := newFixture(t, o)
	r := f.createRun(t, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "url"})
	f.ensureStream(t, testGroup, "url")
	f.putLines(t, testGroup, "url", 0, 3)
	handler := logs.FunctionURLHandler(f.router)

	req := func(iam bool, query string) *events.LambdaFunctionURLRequest {
		ev := &events.LambdaFunctionURLRequest{RawPath: "/runs/" + r.ID + "/logs", RawQueryString: query}
		ev.RequestContext.HTTP.Method = "GET"
		ev.RequestContext.RequestID = "req-1"
		if iam {
			ev.RequestContext.Authorizer = &events.LambdaFunctionURLRequestContextAuthorizerDescription{
				IAM: &events.LambdaFunctionURLRequestContextAuthorizerIAMDescription{UserARN: "arn:aws:iam::123456789012:user/alice"}}
		}
		return ev
	}
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})

	res, err := handler(ctx, req(false, ""))
	require.NoError(t, err)
	require.Equal(t, 401, res.StatusCode)
	io.Copy(io.Discard, res.Body)

	res, err = handler(ctx, req(true, ""))
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	body, _ := io.ReadAll(res.Body)
	var p logs.Page
	require.NoError(t, json.Unmarshal(body, &p))
	require.Len(t, p.Lines, 3)

	// Follow streams through the Function URL until the time bound.
	f.setStatus(t, r.ID, run.StatusSucceeded)
	res, err = handler(ctx, req(true, "follow=true"))
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Headers["Content-Type"])
	body, _ = io.ReadAll(res.Body)
	require.Equal(t, 3, strings.Count(string(body), "event: line"))
	require.Contains(t, string(body), `"reason":"run_ended"`)

	// The buffered API function (API Gateway) refuses follow mode.
	apiRes, err := api.LambdaHandler(api.LocalIdentity(f.router, "x"))(ctx, events.APIGatewayV2HTTPRequest{
		RawPath: "/runs/" + r.ID + "/logs", RawQueryString: "follow=true",
		RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET"}}})
	require.NoError(t, err)
	require.Equal(t, 400, apiRes.StatusCode)
	require.Contains(t, apiRes.Body, "https://abc.lambda-url.us-east-1.on.aws/runs/"+r.ID+"/logs?follow=true")
}

// TestFollowPicksUpTheLogOnceTheHeadStarts follows a submitted run before it
// has a log location; the platform patches it in (as the Batch head's log
// stream becomes known) and the follower reads it from its first line.
func TestFollowPicksUpTheLogOnceTheHeadStarts(t *testing.T) {
	f := newFixture(t, fastFollow)
	r := f.createRun(t, run.StatusSubmitted, nil)
	ch, stop := f.followStream(t, r.ID, "")
	defer stop()

	ref := run.LogRef{Group: "/aws/batch/job", Stream: "ceforge-head/default/0123abcd"}
	f.ensureStream(t, ref.Group, ref.Stream)
	f.putLines(t, ref.Group, ref.Stream, 0, 20)
	// Status first: any refresh that sees the log also sees RUNNING, so the
	// status event precedes the lines.
	f.setStatus(t, r.ID, run.StatusRunning)
	require.NoError(t, f.h.Store.Patch(context.Background(), store.KindRun, r.ID, map[string]any{"logs": ref}, 0))

	var got []string
	var statuses []string
	for ev := range ch {
		switch ev.Name {
		case "line":
			got = append(got, decodeLine(t, ev).Message)
		case "status":
			statuses = append(statuses, ev.Data)
		}
		if len(got) == 20 {
			break
		}
	}
	requireSequence(t, got, 0, 20)
	require.Equal(t, []string{`{"status":"SUBMITTED"}`, `{"status":"RUNNING"}`}, statuses)
}

// TestEmulatorForwardTokenAtEnd pins the GetLogEvents behaviour paging
// relies on, as the emulator implements it: at the end of a stream the
// forward token comes back unchanged (AWS documents the same), and new
// events are read from it once they arrive.
func TestEmulatorForwardTokenAtEnd(t *testing.T) {
	f := newFixture(t, logs.Options{})
	f.ensureStream(t, testGroup, "tokens")
	f.putLines(t, testGroup, "tokens", 0, 3)
	get := func(token *string) *cloudwatchlogs.GetLogEventsOutput {
		out, err := f.cwl.GetLogEvents(context.Background(), &cloudwatchlogs.GetLogEventsInput{
			LogGroupName: aws.String(testGroup), LogStreamName: aws.String("tokens"),
			StartFromHead: aws.Bool(true), NextToken: token})
		require.NoError(t, err)
		return out
	}
	first := get(nil)
	require.Len(t, first.Events, 3)
	end := get(first.NextForwardToken)
	require.Empty(t, end.Events)
	require.Equal(t, aws.ToString(first.NextForwardToken), aws.ToString(end.NextForwardToken))
	f.putLines(t, testGroup, "tokens", 3, 5)
	more := get(end.NextForwardToken)
	require.Len(t, more.Events, 2)
	require.NotEqual(t, aws.ToString(end.NextForwardToken), aws.ToString(more.NextForwardToken))
}

// One caller may hold MaxFollowsPerCaller follow streams at once, however
// many function instances serve them (the slots are leases in the table);
// one more is a 429 too_many_follows that streams nothing, and a slot is
// free again once a stream ends.
func TestFollowsPerCallerAreCapped(t *testing.T) {
	o := fastFollow
	o.MaxFollowsPerCaller = 2
	o.MaxFollow = time.Minute
	f := newFixture(t, o)
	// A second service over the same table: another instance of the function.
	other := logs.New(logs.Deps{Runs: f.h.Logs.Runs, CEs: f.h.Logs.ComputeEnvs, AWS: f.h.Logs.AWS, Log: quiet, Leases: f.h.Logs.Store}, o)
	otherSrv := httptest.NewServer(api.LocalIdentity(handlers.New(handlers.Deps{ComputeEnvs: f.h.Logs.ComputeEnvs, Runs: f.h.Logs.Runs, Log: quiet,
		Extra: []func(*api.Router){other.Routes}}), apptest.Caller))
	defer otherSrv.Close()
	r := f.createRun(t, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "capped"})
	f.ensureStream(t, testGroup, "capped")

	first, stop1 := f.followStream(t, r.ID, "")
	defer stop1()
	<-first // status event: the stream is open
	second, stop2 := f.followStream(t, r.ID, "")
	defer stop2()
	<-second

	get := func(base string) *http.Response {
		res, err := http.Get(base + "/runs/" + r.ID + "/logs?follow=true")
		require.NoError(t, err)
		return res
	}
	for _, base := range []string{f.srv.URL, otherSrv.URL} {
		res := get(base)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, res.StatusCode, string(body))
		require.Contains(t, string(body), `"too_many_follows"`)
		require.NotEqual(t, "text/event-stream", res.Header.Get("Content-Type"))
	}
	// Another caller is not affected.
	n, err := f.h.Store.Lease(context.Background(), "follow#someone-else#0", "x", time.Now(), time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, n)

	stop1()
	require.Eventually(t, func() bool {
		res := get(otherSrv.URL)
		defer res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond, "a slot frees when a stream ends")
}
