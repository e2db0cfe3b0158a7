package app

import (
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/forge"
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

// functions is what each deployed function wires: the one table shared by
// functions/*/main.go and the tests that stand each function up apart
// (apptest), so a test exercises a function's code with exactly its
// features, and the IAM-checked tier holds its calls to its role.
var functions = map[string]struct {
	needs    []string // adapters it cannot do without
	features func(Adapters) []Feature
}{
	// The API validates and records compute environments, launches and
	// cancels runs, serves log pages and queues sweeps; forging and
	// tearing down it hands to the reconciler.
	FnAPI: {[]string{"Parameters", "FileSystems", "Invoker", "LogRoutes", "Tokens"}, func(ad Adapters) []Feature {
		return []Feature{
			Batch(nil, ad.Parameters, ad.FileSystems), Cloud(ad.Parameters, ProvisionElsewhere),
			Sweeps(SweepsBy(ad.Invoker)), HandOff(ad.Invoker), ad.LogRoutes, ad.Tokens,
		}
	}},
	FnBatchEvents: {nil, func(Adapters) []Feature { return []Feature{Batch(nil, nil, nil)} }},
	FnEC2Events:   {nil, func(Adapters) []Feature { return []Feature{Cloud(nil, ProvisionElsewhere)} }},
	FnLogs:        {[]string{"LogRoutes"}, func(ad Adapters) []Feature { return []Feature{ad.LogRoutes} }},
	// The reconciler forges and tears down Batch resources and AWS Cloud
	// roles, repairs run states, applies what runs' heads report and
	// deletes their token secrets.
	FnReconciler: {[]string{"Applier", "Tokens"}, func(ad Adapters) []Feature {
		return []Feature{Batch(ad.Applier, nil, nil), Cloud(nil, ProvisionHere), ad.Tokens}
	}},
	FnSweeper: {nil, func(Adapters) []Feature { return nil }},
	// The trace function receives Nextflow's trace calls (its router is
	// App.TraceRouter) and hands runs to the reconciler.
	FnTrace: {[]string{"Invoker"}, func(ad Adapters) []Feature {
		return []Feature{TraceReceiver(RunsBy(ad.Invoker))}
	}},
}

// FunctionNames are the deployed functions, sorted.
func FunctionNames() []string {
	out := make([]string, 0, len(functions))
	for n := range functions {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// FunctionFeatures returns the features of the deployed function name,
// built from ad; an adapter it needs that ad lacks is an error.
func FunctionFeatures(name string, ad Adapters) ([]Feature, error) {
	f, ok := functions[name]
	if !ok {
		return nil, fmt.Errorf("unknown function %q (app.FunctionNames)", name)
	}
	have := map[string]bool{
		"Applier": ad.Applier != nil, "Parameters": ad.Parameters != nil, "FileSystems": ad.FileSystems != nil,
		"Invoker": ad.Invoker != nil, "LogRoutes": ad.LogRoutes != nil, "Tokens": ad.Tokens != nil,
	}
	for _, n := range f.needs {
		if !have[n] {
			return nil, fmt.Errorf("function %s needs the %s adapter", name, n)
		}
	}
	return f.features(ad), nil
}
