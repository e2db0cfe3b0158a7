package app

import (
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/secret"
)

// Adapters are the clients with heavy SDK packages, each in its own
// package so only the functions that call them link them: a function's
// main passes the ones it imports.
type Adapters struct {
	// Applier forges Batch resources (forge/steps.NewApplier).
	Applier forge.ApplierFactory
	// Parameters reads the public AMI parameters (awsclient/ssmparam.New).
	Parameters func(aws.Config) awsclient.ParameterReader
	// FileSystems reads EFS and FSx file systems a CE names
	// (awsclient/fsread.New).
	FileSystems func(aws.Config) awsclient.FileSystemReader
	// Invoker invokes another function asynchronously
	// (awsclient/lambdainvoke.Func).
	Invoker InvokerFactory
	// LogRoutes adds the run log routes (app/logsroutes.Feature).
	LogRoutes Feature
	// Tokens issues runs' progress tokens and deletes their secrets
	// (app/tokens.Feature).
	Tokens Feature
	// Verifier checks registered credentials' roles
	// (credential/rolecheck.New).
	Verifier func(*awsclient.Factory) credential.Verifier
	// Vaults write pipeline secrets (secret/smvault.New).
	Vaults func(*awsclient.Factory) secret.VaultFactory
}

// The deployed functions (functions/<name>; the CDK app names them
// <prefix><name>).
const (
	FnAPI         = "api"
	FnBatchEvents = "batchevents"
	FnEC2Events   = "ec2events"
	FnLogs        = "logs"
	FnReconciler  = "reconciler"
	FnSweeper     = "sweeper"
	FnTrace       = "trace"
)

// Function is what one deployed function wires: shared by its
// functions/<name>/main.go and the tests that stand it up apart (apptest),
// so a test exercises a function's code with exactly its features, and the
// IAM-checked tier holds its calls to its role.
//
// Each function's wiring is its own constructor, not an entry of a shared
// table: a table (or a switch) reachable from every main makes every
// bootstrap link every feature's code (batchevents grew 7.8 -> 9.4 MB and
// the api passed its 12 MB budget that way; TestBootstrapsLinkOnlyTheirFeatures).
type Function struct {
	Name     string
	needs    []string // adapters it cannot do without
	features func(Adapters) []Feature
}

// Features returns the function's features built from ad; an adapter it
// needs that ad lacks is an error.
func (f Function) Features(ad Adapters) ([]Feature, error) {
	have := map[string]bool{
		"Applier": ad.Applier != nil, "Parameters": ad.Parameters != nil, "FileSystems": ad.FileSystems != nil,
		"Invoker": ad.Invoker != nil, "LogRoutes": ad.LogRoutes != nil, "Tokens": ad.Tokens != nil,
		"Verifier": ad.Verifier != nil, "Vaults": ad.Vaults != nil,
	}
	for _, n := range f.needs {
		if !have[n] {
			return nil, fmt.Errorf("function %s needs the %s adapter", f.Name, n)
		}
	}
	return f.features(ad), nil
}

// APIFunction validates and records compute environments, launches and
// cancels runs, serves log pages and queues sweeps; forging and tearing
// down it hands to the reconciler. It also registers and verifies
// member-account credentials and writes pipeline secrets.
func APIFunction() Function {
	return Function{FnAPI, []string{"Parameters", "FileSystems", "Invoker", "LogRoutes", "Tokens", "Verifier", "Vaults"}, func(ad Adapters) []Feature {
		return []Feature{
			Batch(nil, ad.Parameters, ad.FileSystems), Cloud(ad.Parameters, ProvisionElsewhere),
			Sweeps(SweepsBy(ad.Invoker)), HandOff(ad.Invoker), ad.LogRoutes, ad.Tokens,
			VerifyCredentials(ad.Verifier), Secrets(ad.Vaults),
		}
	}}
}

// BatchEventsFunction applies Batch job state changes to runs.
func BatchEventsFunction() Function {
	return Function{FnBatchEvents, nil, func(Adapters) []Feature { return []Feature{Batch(nil, nil, nil)} }}
}

// EC2EventsFunction applies EC2 state changes and Spot interruptions.
func EC2EventsFunction() Function {
	return Function{FnEC2Events, nil, func(Adapters) []Feature { return []Feature{Cloud(nil, ProvisionElsewhere)} }}
}

// LogsFunction serves log follow streams.
func LogsFunction() Function {
	return Function{FnLogs, []string{"LogRoutes"}, func(ad Adapters) []Feature { return []Feature{ad.LogRoutes} }}
}

// ReconcilerFunction forges and tears down Batch resources and AWS Cloud
// roles, repairs run states, applies what runs' heads report and deletes
// their token secrets.
func ReconcilerFunction() Function {
	return Function{FnReconciler, []string{"Applier", "Tokens"}, func(ad Adapters) []Feature {
		return []Feature{Batch(ad.Applier, nil, nil), Cloud(nil, ProvisionHere), ad.Tokens}
	}}
}

// SweeperFunction deletes what runs leave behind.
func SweeperFunction() Function {
	return Function{FnSweeper, nil, func(Adapters) []Feature { return nil }}
}

// TraceFunction receives Nextflow's trace calls (its router is
// App.TraceRouter) and hands runs to the reconciler.
func TraceFunction() Function {
	return Function{FnTrace, []string{"Invoker"}, func(ad Adapters) []Feature {
		return []Feature{TraceReceiver(RunsBy(ad.Invoker))}
	}}
}

// Functions are every deployed function: for tests and tools, never a
// bootstrap (it would link them all).
func Functions() []Function {
	return []Function{APIFunction(), BatchEventsFunction(), EC2EventsFunction(), LogsFunction(),
		ReconcilerFunction(), SweeperFunction(), TraceFunction()}
}

// FunctionNames are the deployed functions, sorted.
func FunctionNames() []string {
	var out []string
	for _, f := range Functions() {
		out = append(out, f.Name)
	}
	sort.Strings(out)
	return out
}

// FunctionFeatures returns the features of the deployed function name,
// built from ad (tests; a bootstrap uses its own Function).
func FunctionFeatures(name string, ad Adapters) ([]Feature, error) {
	for _, f := range Functions() {
		if f.Name == name {
			return f.Features(ad)
		}
	}
	return nil, fmt.Errorf("unknown function %q (app.FunctionNames)", name)
}
