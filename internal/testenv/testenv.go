// Package testenv gives integration tests a local AWS: one moto server per
// test binary (started in TestMain), reset before each test, with SDK
// clients pointed at it and retries off so unimplemented calls fail loudly.
//
// Code of a deployed function takes its clients from Env.Function: its
// calls are recorded and, when the test ends, evaluated against that
// function's IAM role as the CDK app deploys it (the IAM-checked tier,
// internal/testing/iamcheck); a call the role would deny fails the test.
// Env.AWS is the test's own factory, for setting up and asserting: its
// calls are not checked.
package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/emulator"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/testing/iamcheck"
)

// Region is the default region of test environments.
const Region = "us-east-1"

// Table is the table name tests use.
const Table = "ceforge-test"

// Account is the emulator's account.
const Account = "123456789012"

// Boundary is the permissions boundary ARN of a deployment with prefix in
// the emulator's account (the CDK app's <prefix>boundary policy). The
// emulator checks its form only.
func Boundary(prefix string) string {
	return "arn:aws:iam::" + Account + ":policy/" + prefix + "boundary"
}

var server *emulator.Server

// Main starts the emulator for a test binary, runs the tests and stops it.
// Use it as: func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }.
func Main(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	if ep := os.Getenv("CEFORGE_TEST_ENDPOINT"); ep != "" {
		server, err = emulator.Attach(ctx, ep)
	} else {
		server, err = emulator.Start(ctx, 0, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	defer server.Stop()
	code := m.Run()
	iamcheck.Close()
	if err := iamcheck.WriteReport(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: IAM report:", err)
		return 1
	}
	return code
}

// Env is one test's view of the emulator.
type Env struct {
	Endpoint string
	// AWS is the test's own factory (setup, assertions): not IAM-checked.
	AWS *awsclient.Factory
	// Calls counts the calls of AWS and of every Function factory.
	Calls    *awsclient.CallCounter
	DynamoDB *dynamodb.Client
	Store    *store.Store
	// Deployment is what the functions' roles are rendered for (prefix,
	// allowed regions): set it when the test's functions run with another
	// configuration than the default.
	Deployment iamcheck.Deployment

	t        testing.TB
	recorder *iamcheck.Recorder
	mu       sync.Mutex
	perFn    map[string]*awsclient.CallCounter
	// direct is uncounted, for what is not the code under test (the tier's
	// fact lookups, stand-ins).
	direct *awsclient.Factory
	// admin and functions are the credentials of an IAM-enforcing
	// emulator (EnforceIAM); nil otherwise.
	admin     *aws.Credentials
	functions map[string]*aws.Credentials
}

// New resets the emulator and returns clients and a fresh table.
func New(t testing.TB) *Env {
	t.Helper()
	if server == nil {
		t.Fatal("testenv: emulator not started; call testenv.Main from TestMain")
	}
	ctx := context.Background()
	if err := server.Reset(ctx); err != nil {
		t.Fatalf("reset emulator: %v", err)
	}
	return NewWithoutReset(t)
}

// NewWithoutReset returns clients and a table without wiping the emulator
// (for benchmarks that seed once).
func NewWithoutReset(t testing.TB) *Env {
	t.Helper()
	ctx := context.Background()
	calls := awsclient.NewCallCounter()
	f, err := awsclient.New(ctx, Options(server.Endpoint, calls))
	if err != nil {
		t.Fatalf("aws factory: %v", err)
	}
	// The IAM check reads resource state with its own, uncounted clients.
	direct, err := awsclient.New(ctx, Options(server.Endpoint, nil))
	if err != nil {
		t.Fatalf("aws factory: %v", err)
	}
	db := dynamodb.NewFromConfig(f.Config(""))
	if err := store.CreateTable(ctx, db, Table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	// Seeded through the uncounted client: tests count the calls of the code under test.
	if err := emulator.SeedAccount(ctx, iam.NewFromConfig(direct.Config(""))); err != nil {
		t.Fatal(err)
	}
	e := &Env{
		Endpoint: server.Endpoint, AWS: f, Calls: calls, DynamoDB: db, Store: store.New(db, Table), t: t,
		Deployment: iamcheck.Deployment{Prefix: "ceforge-", Region: Region, Table: Table}, direct: direct,
	}
	e.recorder = iamcheck.NewRecorder(iamcheck.NewLookup(func(region string) aws.Config { return e.Direct().Config(region) }))
	t.Cleanup(func() {
		for _, f := range e.IAMFindings() {
			t.Error(f)
		}
	})
	return e
}

// Function returns a client factory for the code of the deployed function
// name (app.FunctionNames): calls are counted in Calls and (in tests, not
// benchmarks) IAM-checked against that function's role when the test ends.
func (e *Env) Function(name string) *awsclient.Factory {
	return e.FunctionAt(name, e.Endpoint)
}

// FunctionAt is Function with calls sent to endpoint (a fault proxy in
// front of the emulator); the IAM check still reads the emulator directly.
func (e *Env) FunctionAt(name, endpoint string) *awsclient.Factory {
	return e.FunctionWith(name, endpoint, nil)
}

// FunctionWith is FunctionAt with the factory's options adjusted (retries).
func (e *Env) FunctionWith(name, endpoint string, adjust func(*awsclient.Options)) *awsclient.Factory {
	opts := Options(endpoint, e.Calls)
	e.mu.Lock()
	if c := e.functions[name]; c != nil {
		opts.StaticCredentials = c
	} else if e.admin != nil {
		e.mu.Unlock()
		e.t.Fatalf("testenv: the emulator enforces IAM and function %s has no credentials", name)
	}
	e.mu.Unlock()
	if adjust != nil {
		adjust(&opts)
	}
	opts.Middleware = append(opts.Middleware, e.CallsOf(name).Middleware())
	// Benchmarks time what the code does: the tier's fact lookups would
	// add emulator round trips to the timed calls. Tests are checked.
	if _, bench := e.t.(*testing.B); !bench {
		opts.Middleware = append(opts.Middleware, e.recorder.Middleware(name))
		// Calls signed by hand (awsclient/fsread) bypass the middleware.
		opts.HTTPClient = e.recorder.HTTPClient(name, awshttp.NewBuildableClient())
	}
	f, err := awsclient.New(context.Background(), opts)
	if err != nil {
		e.t.Fatalf("aws factory of %s: %v", name, err)
	}
	return f
}

// Direct is an uncounted factory for what is not the code under test
// (stand-ins of other AWS services, the tier's own reads).
func (e *Env) Direct() *awsclient.Factory {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.direct
}

// EnforceIAM makes the emulator check the action of every request against
// its caller's IAM policies (moto's own enforcement, action level only)
// until the test ends: a cross-check of the tier that sees every request
// on the wire, recorded or not. The test's own clients (AWS, Store,
// Direct) then act as an administrator user, and each function's clients
// as a user allowed exactly actions[function]. Call it before wiring the
// functions (apptest.NewOn).
func (e *Env) EnforceIAM(actions map[string][]string) {
	e.t.Helper()
	ctx := context.Background()
	api := iam.NewFromConfig(e.AWS.Config(Region))
	user := func(name string, allowed []string) *aws.Credentials {
		doc, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{
			map[string]any{"Effect": "Allow", "Action": allowed, "Resource": "*"},
		}})
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := api.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)}); err != nil {
			e.t.Fatalf("user %s: %v", name, err)
		}
		pol, err := api.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String(name), PolicyDocument: aws.String(string(doc))})
		if err != nil {
			e.t.Fatalf("policy of %s: %v", name, err)
		}
		if _, err := api.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String(name), PolicyArn: pol.Policy.Arn}); err != nil {
			e.t.Fatalf("policy of %s: %v", name, err)
		}
		key, err := api.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
		if err != nil {
			e.t.Fatalf("key of %s: %v", name, err)
		}
		return &aws.Credentials{AccessKeyID: aws.ToString(key.AccessKey.AccessKeyId), SecretAccessKey: aws.ToString(key.AccessKey.SecretAccessKey)}
	}
	admin := user("ceforge-test-admin", []string{"*"})
	functions := map[string]*aws.Credentials{}
	for fn, allowed := range actions {
		functions[fn] = user("ceforge-test-fn-"+fn, allowed)
	}
	factory := func(calls *awsclient.CallCounter) *awsclient.Factory {
		opts := Options(e.Endpoint, calls)
		opts.StaticCredentials = admin
		f, err := awsclient.New(ctx, opts)
		if err != nil {
			e.t.Fatal(err)
		}
		return f
	}
	e.mu.Lock()
	e.admin, e.functions = admin, functions
	e.AWS, e.direct = factory(e.Calls), factory(nil)
	e.DynamoDB = dynamodb.NewFromConfig(e.AWS.Config(""))
	e.Store = store.New(e.DynamoDB, Table)
	e.mu.Unlock()
	if err := server.EnforceIAM(ctx); err != nil {
		e.t.Fatalf("enforce IAM: %v", err)
	}
	e.t.Cleanup(func() {
		if err := server.Relax(context.Background()); err != nil {
			e.t.Errorf("relax IAM: %v", err)
		}
	})
}

// CallsOf counts the calls of the function name's factories alone.
func (e *Env) CallsOf(name string) *awsclient.CallCounter {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.perFn == nil {
		e.perFn = map[string]*awsclient.CallCounter{}
	}
	if e.perFn[name] == nil {
		e.perFn[name] = awsclient.NewCallCounter()
	}
	return e.perFn[name]
}

// IAMFindings evaluates the functions' calls recorded since the last
// evaluation (the test's end evaluates the rest): the calls their deployed
// roles would deny, and calls the tier cannot map. Each names the function,
// action, resource and the condition that failed.
func (e *Env) IAMFindings() []iamcheck.Finding {
	return e.findings(iamcheck.CheckAndCount(e.recorder.Take(), iamcheck.DeploymentRoles(e.Deployment)))
}

// TakeCalls returns the functions' calls recorded since the last
// evaluation, which the test's end then no longer evaluates.
func (e *Env) TakeCalls() []*iamcheck.Call { return e.recorder.Take() }

// IAMFindingsWith is IAMFindings against other roles (not counted in the
// tier's report).
func (e *Env) IAMFindingsWith(p iamcheck.Principals) []iamcheck.Finding {
	return e.findings(iamcheck.Check(e.recorder.Take(), p))
}

func (e *Env) findings(all []iamcheck.Finding) []iamcheck.Finding {
	seen := map[string]bool{}
	var out []iamcheck.Finding
	for _, f := range all {
		if s := f.String(); !seen[s] {
			seen[s] = true
			out = append(out, f)
		}
	}
	return out
}

// Options returns factory options for the emulator at endpoint: fake static
// credentials, one attempt per call but for a retry of a dropped connection
// (awsclient.Options.ConnectionRetryOnly). Tests that want the production
// retry policy set ConnectionRetryOnly false and MaxAttempts. The sweeper's
// clients take only the attempt count (2) and keep their own policy, so an
// emulator 500 there fails on the second attempt.
func Options(endpoint string, calls *awsclient.CallCounter) awsclient.Options {
	return awsclient.Options{
		Region:              Region,
		Endpoint:            endpoint,
		MaxAttempts:         1,
		ConnectionRetryOnly: true,
		StaticCredentials:   &aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"},
		Counter:             calls,
	}
}

// Server returns the running emulator (for tests that drive its admin API).
func Server() *emulator.Server { return server }

// InAccount returns a configuration that acts in another account of the
// emulator (moto keeps one backend per account and picks it from the
// x-moto-account-id header): tests seed and inspect member accounts with
// it. It goes around ceforge's credentials registry, which product code
// never can.
func InAccount(endpoint, account string) aws.Config {
	return aws.Config{
		Region: Region, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
		APIOptions:  []func(*middleware.Stack) error{smithyhttp.AddHeaderValue("x-moto-account-id", account)},
	}
}
