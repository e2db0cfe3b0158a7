// Package local runs the whole of ceforge in one process against the local
// emulator: the API on net/http, the two event consumers polling their SQS
// queues (as Lambda's event source would), and the reconciler on a timer.
// With Keys, requests must be signed with SigV4 as in AWS: the API as API
// Gateway's IAM authorization checks it (service execute-api), the log
// follow listener as a Function URL with AWS_IAM auth does (service lambda).
// With HeadSim, a head simulator plays the heads of launched runs
// (local/headsim).
package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/user"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/eventsrc/sqspoll"
	"github.com/ceforge/ceforge/internal/local/headsim"
	"github.com/ceforge/ceforge/internal/runtoken"
	"github.com/ceforge/ceforge/internal/sigv4"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/trace"
)

// Options of a local stack.
type Options struct {
	// Addr to serve the API on, e.g. 127.0.0.1:8080.
	Addr string
	// ReconcileEvery is the reconciler period (default 10s).
	ReconcileEvery time.Duration
	// Identity recorded as the caller of every request when Keys is empty
	// (default local:<user>).
	Identity string
	// Keys, when set, turn SigV4 verification on: a request is accepted only
	// when signed with one of them, and its caller is the key's ARN.
	Keys []sigv4.Key
	// LogsAddr, when set, serves the log routes there too, as the logs
	// Function URL does in AWS (signed for service lambda).
	LogsAddr string
	// HeadSim, when set, plays the heads of launched runs (local/headsim).
	HeadSim *headsim.Options
}

// Stack is a running local stack.
type Stack struct {
	App       *app.App
	Addr      string
	LogsAddr  string            // "" without Options.LogsAddr
	QueueURLs map[string]string // BatchQueue/EC2Queue -> URL
	server    *http.Server
	logs      *http.Server
	runCtx    context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// Start prepares the emulator (table, queues) and starts serving.
func Start(ctx context.Context, a *app.App, opts Options) (*Stack, error) {
	if opts.ReconcileEvery <= 0 {
		opts.ReconcileEvery = 10 * time.Second
	}
	if opts.Identity == "" {
		opts.Identity = "local:unknown"
		if u, err := user.Current(); err == nil {
			opts.Identity = "local:" + u.Username
		}
	}
	if err := store.CreateTable(ctx, dynamodb.NewFromConfig(a.AWS.Config("")), a.Config.Table); err != nil {
		return nil, err
	}
	q := sqs.NewFromConfig(a.AWS.Config(""))
	urls := map[string]string{}
	for _, name := range []string{eventsrc.BatchQueue, eventsrc.EC2Queue} {
		url, err := sqspoll.EnsureQueue(ctx, q, a.Config.Prefix+name)
		if err != nil {
			return nil, err
		}
		urls[name] = url
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var sim *headsim.Simulator
	if opts.HeadSim != nil {
		o := *opts.HeadSim
		o.BatchQueueURL, o.EC2QueueURL, o.Prefix = urls[eventsrc.BatchQueue], urls[eventsrc.EC2Queue], a.Config.Prefix
		if o.Region == "" {
			o.Region = a.Config.Region
		}
		if o.Log == nil {
			o.Log = a.Log
		}
		sim = headsim.New(a.AWS.Config(""), o)
		if l, ok := a.Runs.Launchers[computeenv.PlatformBatch].(*batchce.Launcher); ok {
			l.Jobs = func(ce *computeenv.ComputeEnv) batchce.JobsAPI {
				var c awsclient.Credentials
				if ce.Credentials != nil {
					c = awsclient.Credentials{RoleARN: ce.Credentials.RoleARN, ExternalID: ce.Credentials.ExternalID}
				}
				return sim.Jobs(batch.NewFromConfig(a.AWS.ForRole(ce.Region, c)))
			}
		}
	}
	s := &Stack{App: a, QueueURLs: urls, cancel: cancel, runCtx: runCtx}
	handler := a.Handler()
	apiHandler := api.LocalIdentity(handler, opts.Identity)
	logsHandler := apiHandler
	if len(opts.Keys) > 0 {
		keys := map[string]sigv4.Key{}
		for _, k := range opts.Keys {
			keys[k.AccessKeyID] = k
		}
		withIdentity := func(r *http.Request, arn string) *http.Request {
			return r.WithContext(api.WithIdentity(r.Context(), arn))
		}
		apiHandler = unsignedTraceRoutes(handler, (&sigv4.Verifier{Service: "execute-api", Region: a.Config.Region, Keys: keys}).Middleware(handler, withIdentity))
		logsHandler = (&sigv4.Verifier{Service: "lambda", Region: a.Config.Region, Keys: keys}).Middleware(handler, withIdentity)
	}
	var err error
	if s.server, s.Addr, err = s.serve(opts.Addr, apiHandler); err != nil {
		cancel()
		return nil, err
	}
	if iss, ok := a.Runs.Trace.(*runtoken.Issuer); ok && iss.Endpoint == "" {
		// Heads report their progress to this server (scripts/localserver
		// names its address itself: CEFORGE_TRACE_URL).
		iss.Endpoint = "http://" + s.Addr
	}
	if opts.LogsAddr != "" {
		if s.logs, s.LogsAddr, err = s.serve(opts.LogsAddr, logsHandler); err != nil {
			cancel()
			_ = s.server.Close()
			return nil, err
		}
	}
	if sim != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sim.Run(runCtx)
		}()
	}
	for name, proc := range map[string]*eventsrc.Processor{eventsrc.BatchQueue: a.BatchEvents, eventsrc.EC2Queue: a.EC2Events} {
		p := &sqspoll.Poller{Queue: q, QueueURL: urls[name], Handler: proc.SQSHandler(), BatchSize: 10, Wait: time.Second}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			p.Run(runCtx, func(err error) { a.Log.Warn("event poller", "queue", name, "error", err.Error()) })
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(opts.ReconcileEvery)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				_ = a.Reconciler.Once(runCtx)
			}
		}
	}()
	return s, nil
}

// serve listens on addr and serves h until Stop.
func (s *Stack) serve(addr string, h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	// Requests live in the stack's context: Stop ends open follow streams.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return s.runCtx }}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.App.Log.Error("local server stopped", "addr", addr, "error", err.Error())
		}
	}()
	return srv, ln.Addr().String(), nil
}

// Stop shuts the stack down and waits for its goroutines.
func (s *Stack) Stop(ctx context.Context) error {
	s.cancel() // ends follow streams' pollers and the simulator first
	err := s.server.Shutdown(ctx)
	if s.logs != nil {
		err = errors.Join(err, s.logs.Shutdown(ctx))
	}
	s.wg.Wait()
	return err
}

// unsignedTraceRoutes serves Nextflow's trace routes and the Wave relay
// without a signature, as API Gateway does in AWS (Nextflow cannot sign:
// each call carries its run's token), and everything else through signed.
func unsignedTraceRoutes(handler, signed http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", signed)
	unsigned := api.LocalIdentity(handler, "nextflow")
	for _, r := range append(append([]trace.Route{}, trace.Routes...), trace.WaveRoutes...) {
		mux.Handle(r.Method+" "+r.Path, unsigned)
	}
	return mux
}
