// Package eventfuzz fuzzes event decoding through the wired App's two event
// processors. It runs without the emulator (fuzz workers are separate
// processes; one emulator each would cost more than the fuzzing): the App's
// DynamoDB is a tiny HTTP endpoint that knows no item and counts writes, so
// any write is a bug — garbage must be dropped after at most a lookup.
package eventfuzz

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/allinone"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/metrics"
)

// emptyAWS answers every DynamoDB read with "no item" and counts everything
// else that is not a read as a write.
type emptyAWS struct{ writes, reads atomic.Int64 }

func (e *emptyAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndexByte(target, '.')+1:]
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	switch op {
	case "GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems", "DescribeTable":
		e.reads.Add(1)
		switch op {
		case "Query", "Scan":
			_, _ = w.Write([]byte(`{"Items":[],"Count":0}`))
		case "BatchGetItem":
			_, _ = w.Write([]byte(`{"Responses":{}}`))
		case "TransactGetItems":
			_, _ = w.Write([]byte(`{"Responses":[]}`))
		default:
			_, _ = w.Write([]byte(`{}`))
		}
	default:
		// Writes to DynamoDB and any other AWS call (S3 reads of exit
		// files happen only for a known run, so for garbage they are bugs too).
		e.writes.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"ValidationException","message":"eventfuzz: unexpected call ` + op + `"}`))
	}
}

func newApp(t testing.TB) (*app.App, *emptyAWS) {
	fake := &emptyAWS{}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	f, err := awsclient.New(ctx, awsclient.Options{
		Region: "us-east-1", Endpoint: srv.URL, MaxAttempts: 1,
		StaticCredentials: &aws.Credentials{AccessKeyID: "fuzz", SecretAccessKey: "fuzz"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.FromLookup(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Table, cfg.Region, cfg.Endpoint = "fuzz", "us-east-1", srv.URL
	cfg.PermissionsBoundary = "arn:aws:iam::123456789012:policy/" + cfg.Prefix + "boundary"
	a, err := allinone.New(ctx, cfg, app.Options{AWS: f, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.Discard})
	if err != nil {
		t.Fatal(err)
	}
	return a, fake
}

// FuzzEventDecode feeds arbitrary message bodies, alone and mixed with a
// real sample, to both processors: no panic, no write, every message gets
// exactly one outcome, and only undecodable messages fail (so they reach
// the dead-letter queue).
func FuzzEventDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "events", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no sample events: %v", err)
	}
	var samples []string
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var env struct {
			Source     string `json:"source"`
			DetailType string `json:"detail-type"`
		}
		if json.Unmarshal(raw, &env) != nil || env.Source == "" || env.DetailType == "" {
			continue // the reconciler's payloads are JSON too, but not events
		}
		samples = append(samples, string(raw))
		f.Add(string(raw))
	}
	for _, s := range []string{
		"", "null", "{}", "[]", `{"source":"aws.ec2"}`, `{"source":"aws.batch","detail-type":"Batch Job State Change","detail":null}`,
		`{"source":"aws.batch","detail-type":"Batch Job State Change","detail":{"jobId":1}}`,
		`{"source":"aws.batch","detail-type":"Batch Job State Change","detail":{"jobId":"j","tags":{"ceforge:run-id":"r"},"status":"RUNNING","startedAt":-1}}`,
		`{"source":"aws.batch","detail-type":"Batch Job State Change","detail":{"jobId":"j","jobName":"ceforge-head-r","tags":{"ceforge:run-id":"r"},"status":"SUCCEEDED","stoppedAt":9223372036854775807}}`,
		`{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{"instance-id":"i-1","state":"terminated"},"time":"0000-01-01T00:00:00Z"}`,
		`{"source":"aws.ec2","detail-type":"EC2 Spot Instance Interruption Warning","detail":{"instance-id":"i-1\u0000"}}`,
		`{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":"running"}`,
	} {
		f.Add(s)
	}
	a, fake := newApp(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body string) {
		before := fake.writes.Load()
		msgs := []eventsrc.Message{{ID: "fuzz", Body: body}, {ID: "sample", Body: samples[len(body)%len(samples)]}}
		for _, p := range []*eventsrc.Processor{a.EC2Events, a.BatchEvents} {
			failed, out := p.Process(ctx, msgs)
			if got := out.Unparsable + out.Unknown + out.NotOurs + out.Applied + out.Failed; got != len(msgs) {
				t.Fatalf("%d messages, %d outcomes (%+v)", len(msgs), got, out)
			}
			// Only what cannot be decoded fails (to be dead-lettered): the
			// sink never fails for runs it does not know.
			if out.Failed != 0 || len(failed) != out.Unparsable {
				t.Fatalf("failed %v (%+v) for %q: only undecodable messages may fail", failed, out, body)
			}
			for _, id := range failed {
				if id == "sample" {
					t.Fatalf("a real sample failed beside %q", body)
				}
			}
		}
		if n := fake.writes.Load() - before; n != 0 {
			t.Fatalf("%d writes or unexpected AWS calls for events of unknown runs: %q", n, body)
		}
	})
}
