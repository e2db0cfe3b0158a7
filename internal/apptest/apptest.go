// Package apptest runs ceforge as deployed against the emulator for
// end-to-end tests: API request -> handler -> emulator -> store. Each
// function is its own App, wired as functions/<name>/main.go wires it
// (app.FunctionFeatures), with its own AWS clients whose calls the
// IAM-checked tier holds to that function's role (testenv.Env.Function):
// API requests go to the api function, a hand-off or a requested sweep
// (an asynchronous invoke) to the reconciler or the sweeper, events to
// their consumers.
package apptest

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/allinone"
	"github.com/ceforge/ceforge/internal/app/logsroutes"
	"github.com/ceforge/ceforge/internal/app/tokens"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/awsclient/fsread"
	"github.com/ceforge/ceforge/internal/awsclient/lambdainvoke"
	"github.com/ceforge/ceforge/internal/awsclient/ssmparam"
	_ "github.com/ceforge/ceforge/internal/cloudce/cloudiam" // the reconciler provisions AWS Cloud roles
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/credential/rolecheck"
	"github.com/ceforge/ceforge/internal/forge/steps"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/secret/smvault"
	"github.com/ceforge/ceforge/internal/testenv"
)

// Caller is the identity test requests carry.
const Caller = "arn:aws:iam::123456789012:user/tester"

// Harness is the deployment on a fresh emulator state.
type Harness struct {
	*testenv.Env
	// The functions, each wired as deployed.
	API, Reconciler, BatchEvents, EC2Events, Logs, Sweeper, Trace *app.App
	// Router is the api function's router; Do serves it and, for the
	// trace routes, the trace function's (as API Gateway routes them).
	Router *api.Router
	// Config is the functions' configuration.
	Config config.Config

	invoked invocations
	clients Clients
	// traceRouter is the trace function's router (nil when not wired).
	traceRouter *api.Router
}

// New resets the emulator and wires every function on it. Adjust cfg
// (prefix, allowed regions) with mutate before wiring.
func New(t testing.TB, mutate ...func(*config.Config)) *Harness {
	t.Helper()
	return NewOn(t, testenv.New(t), Clients{}, mutate...)
}

// Clients adjusts the functions' AWS clients.
type Clients struct {
	// Endpoint, when set, receives the functions' calls instead of the
	// emulator (a fault proxy in front of it).
	Endpoint string
	// Adjust changes the factories' options (retries).
	Adjust func(*awsclient.Options)
}

// NewOn is New on env, with the functions' clients adjusted by c.
func NewOn(t testing.TB, env *testenv.Env, c Clients, mutate ...func(*config.Config)) *Harness {
	t.Helper()
	h := &Harness{Env: env, clients: c}
	h.Config = h.config(t, mutate...)
	h.deployed(t)
	ad := app.Adapters{
		Applier: steps.NewApplier, Parameters: ssmparam.New, FileSystems: fsread.New, LogRoutes: logsroutes.Feature,
		Tokens: tokens.Feature, Invoker: h.invoker(t), Verifier: rolecheck.New, Vaults: smvault.New,
	}
	fns := map[string]**app.App{
		app.FnAPI: &h.API, app.FnReconciler: &h.Reconciler, app.FnBatchEvents: &h.BatchEvents,
		app.FnEC2Events: &h.EC2Events, app.FnLogs: &h.Logs, app.FnSweeper: &h.Sweeper, app.FnTrace: &h.Trace,
	}
	for _, name := range app.FunctionNames() {
		features, err := app.FunctionFeatures(name, ad)
		if err != nil {
			t.Fatal(err)
		}
		a := h.WireAs(t, name, features...)
		slot, ok := fns[name]
		if !ok {
			t.Fatalf("apptest: function %s has no field in Harness", name)
		}
		*slot = a
	}
	h.Router = h.API.Router()
	h.traceRouter = h.Trace.TraceRouter()
	return h
}

// NewThrough is New with every AWS call, the functions' and the test's
// own (Env.AWS), sent to wrap(emulator endpoint): a test proxy in front of
// the emulator (internal/testing/trustproxy, which decides AssumeRole by
// the role's trust policy). The IAM-checked tier still reads the emulator
// directly.
func NewThrough(t testing.TB, wrap func(endpoint string) string, mutate ...func(*config.Config)) *Harness {
	t.Helper()
	env := testenv.New(t)
	url := wrap(env.Endpoint)
	f, err := awsclient.New(context.Background(), testenv.Options(url, env.Calls))
	if err != nil {
		t.Fatal(err)
	}
	env.AWS = f
	return NewOn(t, env, Clients{Endpoint: url}, mutate...)
}

// NewWith is a harness whose API is one App with only the given features,
// its calls checked as function's (a test of one function's wiring
// variant); the other functions are not wired.
func NewWith(t testing.TB, function string, features []app.Feature, mutate ...func(*config.Config)) *Harness {
	t.Helper()
	h := &Harness{Env: testenv.New(t)}
	h.Config = h.config(t, mutate...)
	h.deployed(t)
	h.API = h.WireAs(t, function, features...)
	h.Router = h.API.Router()
	return h
}

// NewLocal is the local server's App (app/allinone: every feature in one
// App, sweeps in-process) as API. Nothing of it is deployed, so its calls
// are made with the test's own clients and not IAM-checked: the functions'
// code is, through New.
func NewLocal(t testing.TB, mutate ...func(*config.Config)) *Harness {
	t.Helper()
	h := &Harness{Env: testenv.New(t)}
	h.Config = h.config(t, mutate...)
	a, err := allinone.New(context.Background(), h.Config, app.Options{
		AWS: h.AWS, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.API, h.Router = a, a.Router()
	return h
}

func (h *Harness) config(t testing.TB, mutate ...func(*config.Config)) config.Config {
	t.Helper()
	cfg, err := config.FromLookup(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Table, cfg.Region, cfg.Endpoint = testenv.Table, testenv.Region, h.Endpoint
	if h.clients.Endpoint != "" {
		cfg.Endpoint = h.clients.Endpoint
	}
	// As the stack sets them on the api function.
	cfg.SweeperFunction, cfg.ReconcilerFunction = cfg.Prefix+app.FnSweeper, cfg.Prefix+app.FnReconciler
	for _, m := range mutate {
		m(&cfg)
	}
	if cfg.PermissionsBoundary == "" {
		// What the CDK app sets: the deployment's <prefix>boundary policy.
		cfg.PermissionsBoundary = testenv.Boundary(cfg.Prefix)
	}
	return cfg
}

// deployed makes the harness what the CDK app deploys around the
// functions: the roles the tier evaluates their calls against are rendered
// for the configuration's prefix and regions, and the log-cursor key is a
// Secrets Manager secret (generated at deploy, named as the stack names
// it) that the api and logs functions read, so cursors one signs the
// other accepts, and their reads are IAM-checked.
func (h *Harness) deployed(t testing.TB) {
	t.Helper()
	h.Deployment.Prefix, h.Deployment.AllowedRegions = h.Config.Prefix, h.Config.AllowedRegions
	if h.Config.CursorKeySecret != "" {
		return
	}
	out, err := secretsmanager.NewFromConfig(h.Direct().Config(testenv.Region)).CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(CursorKeySecretName(h.Config.Prefix)), SecretString: aws.String(rand.Text() + rand.Text()),
	})
	if err != nil {
		t.Fatalf("apptest: the log-cursor key secret: %v", err)
	}
	h.Config.CursorKeySecret = aws.ToString(out.ARN)
}

// CursorKeySecretName is the name the CDK app gives the log-cursor key
// secret (infra/stack.CursorKeySecretName): the functions' roles grant
// that secret only, so a drift here is a denied
// secretsmanager:GetSecretValue in the IAM-checked tier.
func CursorKeySecretName(prefix string) string { return "control-plane/" + prefix + "log-cursor-key" }

// WireAs builds another App on the harness's emulator and table with the
// given features, its AWS calls made (and IAM-checked) as function's.
func (h *Harness) WireAs(t testing.TB, function string, features ...app.Feature) *app.App {
	t.Helper()
	endpoint := h.Endpoint
	if h.clients.Endpoint != "" {
		endpoint = h.clients.Endpoint
	}
	a, err := app.New(context.Background(), h.Config, app.Options{
		AWS: h.FunctionWith(function, endpoint, h.clients.Adjust), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.Discard,
	}, features...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Invocation is one asynchronous invoke the api made, and how the invoked
// function's handler ended.
type Invocation struct {
	Function string // as invoked: <prefix><name>
	Payload  []byte
	Err      error
}

type invocations struct {
	mu   sync.Mutex
	list []Invocation
	// created: the invoked functions exist in the emulator.
	created map[string]bool
}

// Invocations returns the invokes so far.
func (h *Harness) Invocations() []Invocation {
	h.invoked.mu.Lock()
	defer h.invoked.mu.Unlock()
	return append([]Invocation(nil), h.invoked.list...)
}

// invoker stands in for Lambda's asynchronous invoke: the real Invoke call
// (made, and IAM-checked, as the api), then the invoked function's handler
// at once, as Lambda would shortly after. Its error is recorded, not
// returned: an Event invoke succeeds once queued.
func (h *Harness) invoker(t testing.TB) app.InvokerFactory {
	return func(cfg aws.Config, function string) func(context.Context, []byte) error {
		invoke := lambdainvoke.Func(cfg, function)
		return func(ctx context.Context, payload []byte) error {
			if err := h.createFunction(ctx, function); err != nil {
				return err
			}
			if err := invoke(ctx, payload); err != nil {
				return err
			}
			err := h.handle(context.WithoutCancel(ctx), strings.TrimPrefix(function, h.Config.Prefix), payload)
			h.invoked.mu.Lock()
			h.invoked.list = append(h.invoked.list, Invocation{Function: function, Payload: payload, Err: err})
			h.invoked.mu.Unlock()
			return nil
		}
	}
}

// handle runs the handler of the function name (as functions/<name>/main.go does).
func (h *Harness) handle(ctx context.Context, name string, payload []byte) error {
	switch name {
	case app.FnReconciler:
		return h.Reconciler.Reconcile(ctx, payload)
	case app.FnSweeper:
		_, err := h.Sweeper.Sweeper().HandleInvocation(ctx, payload, h.Config.SweepDryRun)
		return err
	}
	return fmt.Errorf("apptest: no handler for an invoke of %s", name)
}

// createFunction makes an invoked function exist in the emulator (which
// answers an Event invoke of an existing function and runs nothing).
func (h *Harness) createFunction(ctx context.Context, function string) error {
	h.invoked.mu.Lock()
	defer h.invoked.mu.Unlock()
	if h.invoked.created[function] {
		return nil
	}
	// Uncounted: the stand-in is not one of the deployment's calls.
	cfg := h.Direct().Config(testenv.Region)
	role, err := iam.NewFromConfig(cfg).CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String("lambda-" + function),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
	})
	if err != nil {
		return fmt.Errorf("apptest: role of %s: %w", function, err)
	}
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	if w, err := zw.Create("bootstrap"); err == nil {
		_, _ = w.Write([]byte("#!/bin/sh\n"))
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if _, err := lambda.NewFromConfig(cfg).CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String(function), Role: role.Role.Arn, Runtime: lambdatypes.RuntimeProvidedal2023,
		Handler: aws.String("bootstrap"), Code: &lambdatypes.FunctionCode{ZipFile: zipped.Bytes()},
	}); err != nil {
		return fmt.Errorf("apptest: function %s: %w", function, err)
	}
	if h.invoked.created == nil {
		h.invoked.created = map[string]bool{}
	}
	h.invoked.created[function] = true
	return nil
}

// Response is a recorded API response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into out.
func (r Response) JSON(t testing.TB, out any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, out); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Error returns the error object of an error response.
func (r Response) Error(t testing.TB) (code, field, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Field, Message string } `json:"error"`
	}
	r.JSON(t, &e)
	return e.Error.Code, e.Error.Field, e.Error.Message
}

// Do sends a request as Caller to the api function (the trace routes to
// the trace function, as API Gateway does). body may be nil, a
// string (sent as is) or a value (sent as JSON).
func (h *Harness) Do(t testing.TB, method, path string, body any, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	req = req.WithContext(api.WithIdentity(req.Context(), Caller))
	rec := httptest.NewRecorder()
	h.route(req).ServeHTTP(rec, req)
	return Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// Routes are the routes the deployment's HTTP API serves: the api
// function's and the trace function's.
func (h *Harness) Routes() []api.Route {
	out := h.Router.Routes()
	if h.traceRouter != nil {
		out = append(out, h.traceRouter.Routes()...)
	}
	return out
}

// route picks the function API Gateway sends req to: the trace function
// for its routes (the stack declares them apart, without IAM), else the api.
func (h *Harness) route(req *http.Request) http.Handler {
	if h.traceRouter != nil {
		probe := http.NewServeMux()
		for _, r := range h.traceRouter.Routes() {
			probe.HandleFunc(r.Method+" "+r.Path, func(http.ResponseWriter, *http.Request) {})
		}
		if _, pattern := probe.Handler(req); pattern != "" {
			return h.traceRouter
		}
	}
	return h.Router
}
