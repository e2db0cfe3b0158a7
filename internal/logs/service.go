// Package logs serves a run's console log from CloudWatch Logs: pages with
// an opaque cursor, live following as server-sent events with polite
// polling, and the download of the run's nextflow.log from S3 through a
// presigned URL.
package logs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/run"
)

// Page sizes. GetLogEvents returns at most 10,000 events (and 1 MB) per
// call, so the largest page is one call's worth.
const (
	DefaultPageLimit = 1000
	MaxPageLimit     = maxEventsPerCall
)

// Options tune follow mode and downloads. Zero values take the defaults.
type Options struct {
	// PollInterval is the shortest time between two GetLogEvents calls of one
	// follower (default and floor in production: 1s, CloudWatch's
	// GetLogEvents quota is about 10 calls/s per account).
	PollInterval time.Duration
	// IdleAfter is how long a follower may see no new line before it backs
	// off (default 30s).
	IdleAfter time.Duration
	// MaxIdleInterval caps the back-off while idle (default 5s).
	MaxIdleInterval time.Duration
	// MaxThrottleInterval caps the back-off while throttled (default 30s).
	MaxThrottleInterval time.Duration
	// Heartbeat is the longest silence on a follow stream (default 15s).
	Heartbeat time.Duration
	// MaxFollow bounds one follow request; the stream then ends with the
	// resume cursor (default 10m, under Lambda's 15-minute limit).
	MaxFollow time.Duration
	// RunRefresh is how often a follower re-reads the run record (default 5s).
	RunRefresh time.Duration
	// Settle is how long after a run ends its log may still be arriving in
	// CloudWatch (ingestion lag); followers keep reading until then (default 5s).
	Settle time.Duration
	// PresignTTL is the validity of download URLs (default 5m).
	PresignTTL time.Duration
	// CursorKey returns the key that signs cursors (at least 32 bytes),
	// asked once, at the first page or follow: the deployment's secret in
	// AWS (every instance of the api and logs functions must share it),
	// a fixed or random one in tests and locally. Nil: a random key of this
	// Service (cursors die with it).
	CursorKey func(context.Context) ([]byte, error)
	// MaxFollowsPerCaller bounds one caller's concurrent follow streams
	// (default DefaultMaxFollowsPerCaller), so no caller can hold every
	// execution the logs function may run.
	MaxFollowsPerCaller int
	// FollowURL is the base URL of the logs function (Function URL), named
	// to clients that ask the buffered API endpoint to follow.
	FollowURL string
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PollInterval, time.Second)
	def(&o.IdleAfter, 30*time.Second)
	def(&o.MaxIdleInterval, 5*time.Second)
	def(&o.MaxThrottleInterval, 30*time.Second)
	def(&o.Heartbeat, 15*time.Second)
	def(&o.MaxFollow, 10*time.Minute)
	def(&o.RunRefresh, 5*time.Second)
	def(&o.Settle, 5*time.Second)
	def(&o.PresignTTL, 5*time.Minute)
	if o.MaxFollowsPerCaller <= 0 {
		o.MaxFollowsPerCaller = DefaultMaxFollowsPerCaller
	}
	if o.MaxIdleInterval < o.PollInterval {
		o.MaxIdleInterval = o.PollInterval
	}
	if o.MaxThrottleInterval < o.PollInterval {
		o.MaxThrottleInterval = o.PollInterval
	}
	return o
}

// DefaultMaxFollowsPerCaller is how many follow streams one caller may
// hold at once: with the logs function's reserved concurrency (20 in the
// stack), at least six callers can always follow.
const DefaultMaxFollowsPerCaller = 3

// MinCursorKeyBytes is the shortest cursor key accepted.
const MinCursorKeyBytes = 32

// FixedKey is a CursorKey source of one key.
func FixedKey(key []byte) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) { return key, nil }
}

// RandomKey returns a random key: cursors are valid as long as the process
// that holds it (the local server: one per start).
func RandomKey() []byte {
	b := make([]byte, MinCursorKeyBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

// RunGetter reads runs.
type RunGetter interface {
	Get(ctx context.Context, id string) (*run.Run, error)
}

// CEGetter reads compute environments (for the region and role of a run's
// account).
type CEGetter interface {
	Get(ctx context.Context, id string) (*computeenv.ComputeEnv, error)
}

// Leaser holds short leases (store.Store): follow slots.
type Leaser interface {
	Lease(ctx context.Context, id, holder string, now, until time.Time) (bool, error)
	Release(ctx context.Context, id, holder string) error
}

// Deps are the services logs relies on.
type Deps struct {
	Runs RunGetter
	CEs  CEGetter
	AWS  *awsclient.Factory
	Log  *slog.Logger
	// Leases bound the concurrent follows of each caller across every
	// instance of the function (Options.MaxFollowsPerCaller); nil: no cap.
	Leases Leaser
	// Progress, when set, gives the run's progress view: follow streams
	// send it (event "progress") at start and whenever it changes.
	Progress func(ctx context.Context, r *run.Run) (any, error)
}

// Service serves run logs.
type Service struct {
	deps    Deps
	opts    Options
	keyMu   sync.Mutex
	cursors atomic.Pointer[cursorCodec] // nil until the key is read

	mu      sync.Mutex
	clients map[clientKey]*clients
}

type clientKey struct{ region, role, externalID string }

type clients struct {
	logs    *cloudwatchlogs.Client
	s3      *s3.Client
	presign *s3.PresignClient
}

// New returns a Service.
func New(d Deps, o Options) *Service {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	o = o.withDefaults()
	if o.CursorKey == nil {
		o.CursorKey = FixedKey(RandomKey())
	}
	return &Service{deps: d, opts: o, clients: map[clientKey]*clients{}}
}

// loadKey reads the cursor key once (retried on the next request if it
// failed). Without it no page is served: a cursor the service cannot check
// must never be taken on trust.
func (s *Service) loadKey(ctx context.Context) error {
	if s.cursors.Load() != nil {
		return nil
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.cursors.Load() != nil {
		return nil
	}
	key, err := s.opts.CursorKey(ctx)
	if err != nil {
		return fmt.Errorf("read the log cursor key: %w", err)
	}
	if len(key) < MinCursorKeyBytes {
		return fmt.Errorf("the log cursor key has %d bytes, fewer than %d", len(key), MinCursorKeyBytes)
	}
	s.cursors.Store(&cursorCodec{key: key})
	return nil
}

// target is a run with the clients of the account its log lives in.
type target struct {
	run     *run.Run
	ce      *computeenv.ComputeEnv // nil when the CE record is gone
	clients *clients
}

// resolve reads the run and picks the account and region of its log: the
// CE's role and region (the log is in the user's account).
func (s *Service) resolve(ctx context.Context, runID string) (*target, error) {
	r, err := s.deps.Runs.Get(ctx, runID)
	if err != nil {
		return nil, err
	}
	t := &target{run: r}
	var creds awsclient.Credentials
	region := ""
	if s.deps.CEs != nil && r.ComputeEnvID != "" {
		ce, err := s.deps.CEs.Get(ctx, r.ComputeEnvID)
		var ae *apierr.Error
		switch {
		case err == nil:
			t.ce = ce
			region = ce.Region
			if ce.Credentials != nil {
				creds = awsclient.Credentials{RoleARN: ce.Credentials.RoleARN, ExternalID: ce.Credentials.ExternalID}
			}
		case errors.As(err, &ae) && ae.Status == 404:
			// The CE record is gone: read with the control plane's own identity.
		default:
			return nil, fmt.Errorf("read compute environment %s: %w", r.ComputeEnvID, err)
		}
	}
	if r.Backend != nil && r.Backend.Region != "" {
		region = r.Backend.Region
	}
	t.clients = s.clientsFor(region, creds)
	return t, nil
}

func (s *Service) clientsFor(region string, creds awsclient.Credentials) *clients {
	k := clientKey{region, creds.RoleARN, creds.ExternalID}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[k]; ok {
		return c
	}
	cfg := s.deps.AWS.ForRole(region, creds)
	pathStyle := s.deps.AWS.Endpoint() != "" // the emulator serves buckets by path
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle })
	c := &clients{
		logs:    cloudwatchlogs.NewFromConfig(cfg),
		s3:      s3c,
		presign: s3.NewPresignClient(s3c),
	}
	s.clients[k] = c
	return c
}

// Page is a page of a run's log.
type Page struct {
	RunID      string `json:"runId"`
	Status     string `json:"status"`
	Lines      []Line `json:"lines"`
	NextCursor string `json:"nextCursor"`
	// Producing is true while more lines may still come: the run has not
	// ended, or ended so recently that CloudWatch may still be ingesting.
	Producing bool `json:"producing"`
}

// start returns the position a cursor designates for the run's current log.
// A cursor issued for another stream of the same run (a Batch head job's
// retry writes a new stream) restarts at the head of the current one.
func (s *Service) start(t *target, cursor string) (position, error) {
	if cursor == "" {
		return position{}, nil
	}
	d, err := s.cursors.Load().decode(t.run.ID, cursor)
	if err != nil {
		return position{}, err
	}
	if t.run.Logs == nil || d.Stream != streamKey(t.run.Logs.Group, t.run.Logs.Stream) {
		return position{}, nil
	}
	return position{Token: d.Token, Skip: d.Skip}, nil
}

func (s *Service) cursorFor(r *run.Run, p position) string {
	stream := ""
	if r.Logs != nil {
		stream = streamKey(r.Logs.Group, r.Logs.Stream)
	}
	return s.cursors.Load().encode(r.ID, stream, p)
}

// producing reports whether the run may still add lines.
func (s *Service) producing(r *run.Run, now time.Time) bool {
	if r.Active() {
		return true
	}
	return r.Timeline.Completed != nil && now.Sub(*r.Timeline.Completed) < s.opts.Settle
}

// maxCallsPerPage bounds the GetLogEvents calls of one page: one normally,
// more only when CloudWatch answers empty with a new token.
const maxCallsPerPage = 3

// Page returns up to limit lines from cursor.
func (s *Service) Page(ctx context.Context, runID, cursor string, limit int) (*Page, error) {
	if err := s.loadKey(ctx); err != nil {
		return nil, err
	}
	t, err := s.resolve(ctx, runID)
	if err != nil {
		return nil, err
	}
	pos, err := s.start(t, cursor)
	if err != nil {
		return nil, err
	}
	r := t.run
	p := &Page{RunID: r.ID, Status: r.Status, Lines: []Line{}, Producing: s.producing(r, time.Now())}
	if r.Logs == nil || r.Logs.Group == "" || r.Logs.Stream == "" {
		// Not started: no log yet. The cursor lets the client come back.
		p.NextCursor = s.cursorFor(r, pos)
		return p, nil
	}
	b, err := read(ctx, t.clients.logs, r.Logs.Group, r.Logs.Stream, pos, limit, maxCallsPerPage)
	if err != nil {
		return nil, err
	}
	p.Lines = append(p.Lines, b.lines...)
	p.NextCursor = s.cursorFor(r, b.next)
	return p, nil
}

// NextflowLogKey is where a run's head uploads nextflow.log, under the
// run's work directory.
func NextflowLogKey(prefix, runID string) string {
	if prefix != "" {
		prefix += "/"
	}
	return prefix + ".ceforge/runs/" + runID + "/nextflow.log"
}

// DownloadURL returns a presigned GET URL of the run's nextflow.log, or a
// 404 saying why there is none.
func (s *Service) DownloadURL(ctx context.Context, runID string) (string, error) {
	t, err := s.resolve(ctx, runID)
	if err != nil {
		return "", err
	}
	r := t.run
	if r.Active() {
		return "", &apierr.Error{Status: 404, Code: "run_not_finished",
			Message: fmt.Sprintf("run %s is %s: nextflow.log is uploaded when the run finishes; follow the console log at /runs/%s/logs?follow=true", r.ID, r.Status, r.ID)}
	}
	workDir := r.WorkDir
	if workDir == "" && t.ce != nil {
		workDir = t.ce.WorkDir
	}
	if workDir == "" {
		return "", &apierr.Error{Status: 404, Code: "log_not_uploaded", Message: fmt.Sprintf("run %s has no work directory, so no nextflow.log", r.ID)}
	}
	bucket, prefix, err := computeenv.ParseS3URI("workDir", workDir)
	if err != nil {
		return "", &apierr.Error{Status: 404, Code: "log_not_uploaded", Message: fmt.Sprintf("run %s has no S3 work directory (%s), so no nextflow.log", r.ID, workDir)}
	}
	key := NextflowLogKey(prefix, r.ID)
	loc := "s3://" + bucket + "/" + key
	if _, err := t.clients.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		switch code := errorCode(err); code {
		case "NotFound", "NoSuchKey", "NoSuchBucket", "404":
			return "", &apierr.Error{Status: 404, Code: "log_not_uploaded",
				Message: fmt.Sprintf("run %s finished (%s) but no nextflow.log was uploaded to %s", r.ID, r.Status, loc)}
		case "Forbidden", "AccessDenied", "403":
			return "", &apierr.Error{Status: 404, Code: "log_not_readable",
				Message: fmt.Sprintf("%s cannot be read with the compute environment's role (access denied)", loc)}
		}
		return "", fmt.Errorf("head %s: %w", loc, err)
	}
	req, err := t.clients.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)},
		s3.WithPresignExpires(s.opts.PresignTTL))
	if err != nil {
		return "", fmt.Errorf("presign %s: %w", loc, err)
	}
	return req.URL, nil
}
