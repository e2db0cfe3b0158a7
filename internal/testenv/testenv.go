// Package testenv gives integration tests a local AWS: one moto server per
// test binary (started in TestMain), reset before each test, with SDK
// clients pointed at it and retries off so unimplemented calls fail loudly.
package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/emulator"
	"github.com/ceforge/ceforge/internal/store"
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
	return m.Run()
}

// Env is one test's view of the emulator.
type Env struct {
	Endpoint string
	AWS      *awsclient.Factory
	Calls    *awsclient.CallCounter
	DynamoDB *dynamodb.Client
	Store    *store.Store
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
	db := dynamodb.NewFromConfig(f.Config(""))
	if err := store.CreateTable(ctx, db, Table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	// Seeded through an uncounted client: tests count the calls of the code under test.
	seed, err := awsclient.New(ctx, Options(server.Endpoint, nil))
	if err != nil {
		t.Fatalf("aws factory: %v", err)
	}
	if err := emulator.SeedAccount(ctx, iam.NewFromConfig(seed.Config(""))); err != nil {
		t.Fatal(err)
	}
	return &Env{Endpoint: server.Endpoint, AWS: f, Calls: calls, DynamoDB: db, Store: store.New(db, Table)}
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
