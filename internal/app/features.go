package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/awsclient/signed"
	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/cloudce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/credential/rolecheck"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/secret"
	"github.com/ceforge/ceforge/internal/sweep"
	"github.com/ceforge/ceforge/internal/trace"
)

// Batch adds the aws-batch platform: forge/manual compute environments,
// head jobs and the Batch Job State Change consumer. applier forges Batch
// resources (forge/steps); nil in functions that leave forging to the
// reconciler. params resolves the AMIs and fs reads EFS/FSx file systems
// when a CE is validated (awsclient/ssmparam, awsclient/fsread); nil in
// functions that never validate one.
func Batch(applier forge.ApplierFactory, params func(aws.Config) awsclient.ParameterReader, fs func(aws.Config) awsclient.FileSystemReader) Feature {
	return func(_ context.Context, a *App) error {
		if applier != nil && a.Config.PermissionsBoundary == "" {
			return errNoBoundary
		}
		log := a.Log.With("platform", computeenv.PlatformBatch)
		sink := &batchce.Sink{Store: a.Store, Runs: a.Runs, Log: log, Account: a.Config.Account}
		a.ComputeEnvs.Provisioners[computeenv.PlatformBatch] = &batchce.Provisioner{
			AWS: a.AWS, Prefix: a.Config.Prefix, Applier: applier, Parameters: params, FileSystems: fs, Log: log,
			Boundary: a.Config.PermissionsBoundary,
		}
		a.Runs.Launchers[computeenv.PlatformBatch] = &batchce.Launcher{AWS: a.AWS, Prefix: a.Config.Prefix, Store: a.Store, Sink: sink, Log: log}
		a.BatchEvents.Handle(sink, map[eventsrc.Kind]eventsrc.Parser{batchce.JobStateChange: batchce.Parser(a.Config.Prefix)})
		return nil
	}
}

// errNoBoundary fails the start of a function that would forge IAM roles
// with no permissions boundary to put them under.
var errNoBoundary = errors.New("CEFORGE_PERMISSIONS_BOUNDARY is not set: this function forges IAM roles and creates none without a permissions boundary")

// Provisioning says whether a function creates and deletes compute
// environment resources itself or hands those steps on (to the reconciler).
type Provisioning bool

// The two Provisioning choices.
const (
	ProvisionHere      Provisioning = true
	ProvisionElsewhere Provisioning = false
)

// Cloud adds the AWS Cloud platform: one IAM role + instance profile per
// CE, one EC2 head instance per run, EC2 state-change and Spot events.
// params reads the AMI parameters when a CE is validated
// (awsclient/ssmparam); nil in functions that never validate one.
func Cloud(params func(aws.Config) awsclient.ParameterReader, provisioning Provisioning) Feature {
	return func(_ context.Context, a *App) error {
		if provisioning == ProvisionHere && a.Config.PermissionsBoundary == "" {
			return errNoBoundary
		}
		if provisioning == ProvisionHere && !cloudce.CanProvision() {
			return errors.New("this function provisions AWS Cloud compute environments but links no IAM client: import internal/cloudce/cloudiam for its side effect")
		}
		c := cloudce.Config{
			AWS: a.AWS, Runs: a.Runs, Prefix: a.Config.Prefix, LogGroup: a.Config.RunLogGroup,
			AllowedRegions: a.Config.AllowedRegions, Parameters: params, Log: a.Log.With("platform", computeenv.PlatformCloud),
			ProvisionElsewhere: provisioning == ProvisionElsewhere, Boundary: a.Config.PermissionsBoundary,
			Account: a.Config.Account,
		}
		p := cloudce.New(c)
		a.ComputeEnvs.Provisioners[computeenv.PlatformCloud] = p
		a.Runs.Launchers[computeenv.PlatformCloud] = p
		a.EC2Events.Handle(p, p.Parsers())
		return nil
	}
}

// InvokerFactory returns an asynchronous invoke of a function by name
// (awsclient/lambdainvoke.Func).
type InvokerFactory func(cfg aws.Config, function string) func(ctx context.Context, payload []byte) error

// Sweeps adds the /sweeps routes. dispatch builds where a requested sweep
// runs: SweepsBy (the sweeper function) in AWS, SweepsHere locally.
func Sweeps(dispatch func(*App, *sweep.Sweeper) (sweep.Dispatcher, error)) Feature {
	return func(_ context.Context, a *App) error {
		sw := a.Sweeper()
		d, err := dispatch(a, sw)
		if err != nil {
			return err
		}
		a.Routes = append(a.Routes, (&sweep.HTTP{Sweeper: sw, Dispatcher: d}).Routes)
		return nil
	}
}

// SweepsBy hands requested sweeps to the sweeper function
// (CEFORGE_SWEEPER_FUNCTION) with an asynchronous invoke: a sweep runs for
// up to 15 minutes and the API must answer in seconds.
func SweepsBy(invoker InvokerFactory) func(*App, *sweep.Sweeper) (sweep.Dispatcher, error) {
	return func(a *App, _ *sweep.Sweeper) (sweep.Dispatcher, error) {
		if a.Config.SweeperFunction == "" {
			return nil, fmt.Errorf("sweeps: CEFORGE_SWEEPER_FUNCTION is not set")
		}
		return sweep.LambdaDispatcher{Invoke: invoker(a.AWS.Config(""), a.Config.SweeperFunction)}, nil
	}
}

// SweepsHere runs requested sweeps in a goroutine of this process (the
// local server).
func SweepsHere(_ *App, sw *sweep.Sweeper) (sweep.Dispatcher, error) {
	return &sweep.LocalDispatcher{Sweeper: sw}, nil
}

// ProvisionRequest is the reconciler's payload when the API hands it a
// compute environment; scheduled invocations carry a Scheduled Event.
type ProvisionRequest struct {
	ComputeEnvID string `json:"computeEnvId"`
}

// HandOff makes the provisioning steps this function cannot take (see
// computeenv.ErrProvisionElsewhere) go to the reconciler function
// (CEFORGE_RECONCILER_FUNCTION) at once, with an asynchronous invoke,
// rather than at its next scheduled pass. Unset, the schedule takes them.
func HandOff(invoker InvokerFactory) Feature {
	return func(_ context.Context, a *App) error {
		if a.Config.ReconcilerFunction == "" {
			return nil
		}
		invoke := invoker(a.AWS.Config(""), a.Config.ReconcilerFunction)
		a.ComputeEnvs.Handoff = func(ctx context.Context, ceID string) error {
			payload, err := json.Marshal(ProvisionRequest{ComputeEnvID: ceID})
			if err != nil {
				return fmt.Errorf("encode provision request: %w", err)
			}
			return invoke(ctx, payload)
		}
		return nil
	}
}

// Routes adds API routes built from the App (app/logsroutes).
func Routes(build func(*App) func(*api.Router)) Feature {
	return func(_ context.Context, a *App) error {
		a.Routes = append(a.Routes, build(a))
		return nil
	}
}

// Sweeper returns the sweeper configured from the App's configuration.
func (a *App) Sweeper() *sweep.Sweeper {
	opts := sweep.Options{Grace: a.Config.SweepGrace, Prefix: a.Config.Prefix,
		PricePerGiBMonth: a.Config.SweepGP3Price, MaxDeletions: a.Config.SweepMaxDeletions}
	return &sweep.Sweeper{
		Store: a.Store, Clients: sweep.FactoryClients(a.AWS, ""), Options: opts,
		Log: a.Log.With("component", "sweeper"), Metrics: a.Metrics, Registered: a.Credentials.Registered,
	}
}

// Reconcile handles one invocation of the reconciler function: a
// ProvisionRequest from the API advances that compute environment; any
// other payload (the schedule's Scheduled Event) runs a full pass.
func (a *App) Reconcile(ctx context.Context, payload json.RawMessage) error {
	var rr RunRequest
	if json.Unmarshal(payload, &rr) == nil && rr.RunID != "" {
		if err := a.Applier.Apply(ctx, rr.RunID); err != nil {
			return fmt.Errorf("apply progress of run %s: %w", rr.RunID, err)
		}
		return nil
	}
	var req ProvisionRequest
	if json.Unmarshal(payload, &req) == nil && req.ComputeEnvID != "" {
		err := a.ComputeEnvs.Advance(ctx, req.ComputeEnvID)
		if e, ok := apierr.As(err); ok && e.Status == http.StatusNotFound {
			// Nothing to do; an error would only make Lambda retry it.
			a.Log.Warn("hand-off for an unknown compute environment", "ce_id", req.ComputeEnvID)
			return nil
		}
		if err != nil {
			// Lambda retries the invocation; the schedule would repair it too.
			return fmt.Errorf("advance compute environment %s: %w", req.ComputeEnvID, err)
		}
		return nil
	}
	return a.Reconciler.Once(ctx)
}

// RunRequest is the reconciler's payload when the trace function hands it
// a run whose trace began, completed or crossed its cost limit.
type RunRequest struct {
	RunID string `json:"runId"`
}

// Notifier builds where the trace receiver hands runs to: RunsBy (the
// reconciler function) in AWS, RunsHere locally.
type Notifier func(*App) (func(ctx context.Context, runID string) error, error)

// RunsBy hands runs to the reconciler function (CEFORGE_RECONCILER_FUNCTION)
// with an asynchronous invoke: the trace function may write only progress
// and task items, the reconciler may change runs and stop heads. Unset, the
// reconciler's scheduled pass applies them.
func RunsBy(invoker InvokerFactory) Notifier {
	return func(a *App) (func(context.Context, string) error, error) {
		if a.Config.ReconcilerFunction == "" {
			return nil, nil
		}
		invoke := invoker(a.AWS.Config(""), a.Config.ReconcilerFunction)
		return func(ctx context.Context, runID string) error {
			payload, err := json.Marshal(RunRequest{RunID: runID})
			if err != nil {
				return fmt.Errorf("encode run request: %w", err)
			}
			return invoke(ctx, payload)
		}, nil
	}
}

// RunsHere applies runs in this process (the local server).
func RunsHere(a *App) (func(context.Context, string) error, error) {
	return a.Applier.Apply, nil
}

// TraceReceiver adds the Nextflow trace routes (internal/trace).
func TraceReceiver(notify Notifier) Feature {
	return func(_ context.Context, a *App) error {
		n, err := notify(a)
		if err != nil {
			return err
		}
		a.Trace = &trace.Receiver{Progress: a.Progress, Notify: n, Throttle: trace.DefaultThrottle(), Log: a.Log.With("component", "trace"),
			Wave: &trace.WaveRelay{Upstream: a.Config.WaveURL}}
		a.Routes = append(a.Routes, a.Trace.Register)
		return nil
	}
}

// TraceRouter is the trace function's router: the trace routes alone,
// authorised by each run's token instead of IAM (Nextflow cannot sign).
func (a *App) TraceRouter() *api.Router {
	rt := api.NewRouter(a.Log)
	rt.RequireIdentity = false
	if a.Trace != nil {
		a.Trace.Register(rt)
	}
	return rt
}

// VerifyCredentials lets this function verify registered credentials
// (the API): newVerifier builds the checker (credential/rolecheck, passed
// in by main so only this function links the IAM client). Credentials whose
// role cannot be assumed get the member stack's deploy command.
func VerifyCredentials(newVerifier func(*awsclient.Factory) credential.Verifier) Feature {
	return func(_ context.Context, a *App) error {
		a.Credentials.Verifier = newVerifier(a.AWS)
		var once sync.Once
		var account string
		region := a.Config.Region
		a.Credentials.Setup = func(ctx context.Context, c *credential.Credential) string {
			once.Do(func() {
				if acct, _, err := rolecheck.CallerIdentity(ctx, signed.New(a.AWS.Config(""))); err == nil {
					account = acct
				}
			})
			return credential.SetupText(c, account, region)
		}
		return nil
	}
}

// Secrets keeps pipeline secrets (the API): the /secrets routes, and the
// checks compute environments and runs make when they name secrets.
// vaults writes values to Secrets Manager (secret/smvault, passed in by
// main so only this function links the client for it).
func Secrets(vaults func(*awsclient.Factory) secret.VaultFactory) Feature {
	return func(_ context.Context, a *App) error {
		a.Secrets = &secret.Service{
			Store: a.Store, Prefix: a.Config.Prefix, AllowedRegions: a.Config.AllowedRegions,
			Credentials: a.Credentials, Vaults: vaults(a.AWS), Log: a.Log,
		}
		a.ComputeEnvs.Secrets = a.Secrets
		a.Runs.Secrets = a.Secrets
		return nil
	}
}
