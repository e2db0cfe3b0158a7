// Package app wires ceforge's parts from configuration: AWS clients, the
// store, the domain services, event processors and the router, plus the
// Features a function asks for (platforms, sweeps, log routes…). Each
// deployed function wires its features from one table (functions.go), so
// a bootstrap links only the AWS clients its capability needs: smaller,
// faster to start, and matching its IAM role; the tests stand each function
// up from the same table (apptest). Adapters whose SDK packages are heavy
// (forge/steps, awsclient/ssmparam, awsclient/lambdainvoke, logs) are
// passed in by main, never imported here; app/allinone wires everything
// for the local server.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/handlers"
	"github.com/ceforge/ceforge/internal/logging"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/progress"
	"github.com/ceforge/ceforge/internal/reconcile"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/secret"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/trace"
)

// App holds the wired parts.
type App struct {
	Config  config.Config
	AWS     *awsclient.Factory
	Store   *store.Store
	Log     *slog.Logger
	Metrics *metrics.Emitter

	ComputeEnvs *computeenv.Service
	Runs        *run.Service
	// Progress is what runs' heads report (internal/trace writes it, the
	// API reads it); Applier turns it into run changes.
	Progress   *progress.Store
	Applier    *progress.Applier
	Reconciler *reconcile.Reconciler
	// Credentials are the registered member-account roles; the AWS client
	// factory assumes no other (awsclient.Factory.UseRegistry).
	Credentials *credential.Service
	// Trace is the Nextflow trace receiver (TraceReceiver).
	Trace *trace.Receiver
	// Secrets are the pipeline secrets (nil unless the function keeps
	// them: app.Secrets).
	Secrets *secret.Service
	// BatchEvents and EC2Events consume the two event queues.
	BatchEvents *eventsrc.Processor
	EC2Events   *eventsrc.Processor
	// Routes are extra API routes registered by platforms and features.
	Routes []func(*api.Router)
	// CursorKey is where the log routes get the key that signs log cursors
	// (set by app/logsroutes).
	CursorKey func(context.Context) ([]byte, error)
}

// Options adjust New for tests and the local server.
type Options struct {
	// AWS, when set, is used instead of building a factory from Config.
	AWS *awsclient.Factory
	// Log, when set, replaces the JSON logger on stdout.
	Log *slog.Logger
	// Metrics, when set, replaces the EMF emitter on stdout.
	Metrics *metrics.Emitter
}

// Feature adds one capability to an App.
type Feature func(context.Context, *App) error

// New wires an App from configuration with the given features.
func New(ctx context.Context, cfg config.Config, opts Options, features ...Feature) (*App, error) {
	a := &App{Config: cfg, Log: opts.Log, Metrics: opts.Metrics, AWS: opts.AWS}
	if a.Log == nil {
		a.Log = logging.New(os.Stdout, cfg.LogLevel)
	}
	if a.Metrics == nil {
		a.Metrics = metrics.Default()
	}
	if a.AWS == nil {
		f, err := awsclient.New(ctx, awsclient.Options{Region: cfg.Region, Endpoint: cfg.Endpoint})
		if err != nil {
			return nil, fmt.Errorf("aws clients: %w", err)
		}
		a.AWS = f
	}
	db := dynamodb.NewFromConfig(a.AWS.Config(""))
	a.Store = store.New(db, cfg.Table)
	a.Runs = &run.Service{Store: a.Store, Launchers: map[string]run.Launcher{}, Metrics: a.Metrics, Log: a.Log, AllowedBuckets: cfg.AllowedBuckets}
	a.Credentials = &credential.Service{Store: a.Store, Prefix: cfg.Prefix, Log: a.Log}
	a.AWS.UseRegistry(a.Credentials.Registered)
	a.ComputeEnvs = &computeenv.Service{
		Store: a.Store, Provisioners: map[string]computeenv.Provisioner{},
		AllowedRegions: cfg.AllowedRegions, AllowedBuckets: cfg.AllowedBuckets, Runs: a.Runs, Log: a.Log,
		Credentials: a.Credentials,
	}
	a.Progress = &progress.Store{DB: db, Table: cfg.Table}
	a.Applier = &progress.Applier{Runs: a.Runs, Progress: a.Progress, Log: a.Log.With("component", "progress")}
	a.Reconciler = &reconcile.Reconciler{CEs: a.ComputeEnvs, Runs: a.Runs, Progress: a.Applier, Log: a.Log}
	a.BatchEvents = eventsrc.NewProcessor(a.Log.With("consumer", "batchevents"), a.Metrics)
	a.EC2Events = eventsrc.NewProcessor(a.Log.With("consumer", "ec2events"), a.Metrics)

	for _, add := range features {
		if err := add(ctx, a); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Router returns the HTTP API.
func (a *App) Router() *api.Router {
	return handlers.New(handlers.Deps{ComputeEnvs: a.ComputeEnvs, Runs: a.Runs, Progress: a.Progress, Credentials: a.Credentials, Secrets: a.Secrets, Log: a.Log, Extra: a.Routes})
}

// Handler returns the API as an http.Handler.
func (a *App) Handler() http.Handler { return a.Router() }
