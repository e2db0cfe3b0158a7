package stack

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/ceforge/ceforge/internal/member"
)

// Function names: functions/<name> in the repository, build/<name>/bootstrap
// after `make build`, and the Lambda function <prefix><name>.
const (
	FnAPI         = "api"
	FnLogs        = "logs"
	FnBatchEvents = "batchevents"
	FnEC2Events   = "ec2events"
	FnReconciler  = "reconciler"
	FnSweeper     = "sweeper"
	FnTrace       = "trace"
)

// FunctionNames lists every function, in deployment order.
var FunctionNames = []string{FnAPI, FnLogs, FnBatchEvents, FnEC2Events, FnReconciler, FnSweeper, FnTrace}

// FunctionSpec sizes one function.
type FunctionSpec struct {
	Name        string
	Description string
	MemoryMB    int
	Timeout     time.Duration
	// Reserved concurrency; 0 means unreserved.
	Reserved int
	// Async invocations (schedules, the api's sweep trigger): retries after
	// a function error and how long an event may wait (throttled) before it
	// is dropped. Zero MaxEventAge keeps Lambda's defaults.
	AsyncRetries int
	MaxEventAge  time.Duration
}

// Reserved concurrency. Reserved concurrency is both a floor and a cap: the
// event consumers and the reconciler always have theirs, however many API
// calls and log followers arrive, and the API and the log function can
// never take more than theirs from the account's pool. Together 116, so an
// account needs a Lambda concurrency quota of at least 216 (AWS keeps 100
// unreserved); the default quota is 1,000.
const (
	// APIConcurrency serves the stage's 50 requests/s (burst 100) at
	// sub-second latencies with room to spare.
	APIConcurrency = 50
	// LogsConcurrency caps concurrent log follows (each holds an execution
	// for up to MaxFollow); MaxFollowsPerCaller shares it out.
	LogsConcurrency = 20
	// EventConcurrency equals the SQS event sources' maximum concurrency
	// (EventMaxConcurrency), so a consumer is never throttled by its own cap.
	EventConcurrency = EventMaxConcurrency
	// ReconcilerConcurrency: the minute's pass plus the API's hand-offs.
	ReconcilerConcurrency = 5
	// SweeperConcurrency: one sweep at a time.
	SweeperConcurrency = 1
	// TraceConcurrency: Nextflow's trace calls (about one a second per
	// run, each tens of milliseconds): 20 at once serve a few hundred
	// reporting runs, and cap what a flood of unsigned calls can take
	// from the account.
	TraceConcurrency = 20
)

// FunctionSpecs returns the sizing of every function. Timeouts follow the
// trigger: API Gateway HTTP APIs stop waiting after 30 s; a Function URL
// stream may stay open for the 15-minute Lambda maximum; SQS consumers get a
// short timeout so the queue's visibility timeout (6x) stays short; the
// reconciler runs every minute; the sweeper resumes across invocations.
func FunctionSpecs() []FunctionSpec {
	return []FunctionSpec{
		{Name: FnAPI, Description: "ceforge HTTP API (API Gateway HTTP API, IAM auth)", MemoryMB: 512, Timeout: 29 * time.Second, Reserved: APIConcurrency},
		{Name: FnLogs, Description: "ceforge run logs: follow (response streaming) and download, behind a Function URL", MemoryMB: 256, Timeout: 15 * time.Minute, Reserved: LogsConcurrency},
		{Name: FnBatchEvents, Description: "ceforge Batch Job State Change consumer (SQS)", MemoryMB: 256, Timeout: time.Minute, Reserved: EventConcurrency},
		{Name: FnEC2Events, Description: "ceforge EC2 state-change and Spot interruption consumer (SQS)", MemoryMB: 256, Timeout: time.Minute, Reserved: EventConcurrency},
		// A missed tick is repaired by the next one: no retries, and a
		// throttled tick older than a minute is dropped.
		{Name: FnReconciler, Description: "ceforge reconciler: advances compute environments, repairs run states (every minute)", MemoryMB: 512, Timeout: 2 * time.Minute, Reserved: ReconcilerConcurrency, AsyncRetries: 0, MaxEventAge: time.Minute},
		// One sweeper at a time; a sweep requested while another runs waits
		// (throttled async event) for up to an hour.
		{Name: FnSweeper, Description: "ceforge sweeper: deletes orphaned ceforge-owned resources", MemoryMB: 512, Timeout: 15 * time.Minute, Reserved: SweeperConcurrency, AsyncRetries: 0, MaxEventAge: time.Hour},
		{Name: FnTrace, Description: "ceforge Nextflow trace receiver (API Gateway without IAM: per-run tokens)", MemoryMB: 256, Timeout: 29 * time.Second, Reserved: TraceConcurrency},
	}
}

func specOf(name string) FunctionSpec {
	for _, s := range FunctionSpecs() {
		if s.Name == name {
			return s
		}
	}
	panic("unknown function " + name)
}

// roleName is the IAM role of a function. It must never start with the
// resource prefix: the api and reconciler manage roles named <prefix>*, and
// must not be able to modify their own (Config.Validate checks this).
// Member roles trust these names (internal/member).
func roleName(prefix, fn string) string { return member.FunctionRoleName(prefix, fn) }

// Functions holds the six functions with their roles and log groups.
type Functions struct {
	Fn        map[string]awslambda.Function
	Role      map[string]awsiam.Role
	LogGroup  map[string]awslogs.LogGroup
	Retention awslogs.RetentionDays
}

func newFunctions(scope constructs.Construct, cfg Config, tableName *string) *Functions {
	c := constructs.NewConstruct(scope, jsii.String("Functions"))
	f := &Functions{
		Fn:        map[string]awslambda.Function{},
		Role:      map[string]awsiam.Role{},
		LogGroup:  map[string]awslogs.LogGroup{},
		Retention: retention(cfg.LogRetentionDays),
	}
	env := map[string]*string{
		"CEFORGE_TABLE":           tableName,
		"CEFORGE_PREFIX":          jsii.String(cfg.Prefix),
		"CEFORGE_ALLOWED_REGIONS": jsii.String(strings.Join(cfg.AllowedRegions, ",")),
		"CEFORGE_ALLOWED_BUCKETS": jsii.String(strings.Join(cfg.Buckets(), ",")),
		"CEFORGE_RUN_LOG_GROUP":   jsii.String(cfg.RunLogGroup),
		"CEFORGE_SWEEP_DRY_RUN":   jsii.String(strconv.FormatBool(cfg.SweeperDryRun)),
		"CEFORGE_SWEEP_GRACE":     jsii.String(cfg.SweeperGrace),
		"CEFORGE_LOG_LEVEL":       jsii.String(cfg.LogLevel),
		// Events about runs in the control plane's account must come from it.
		"CEFORGE_ACCOUNT": awscdk.Aws_ACCOUNT_ID(),
	}
	for _, spec := range FunctionSpecs() {
		id := constructID(spec.Name)
		role := awsiam.NewRole(c, jsii.String(id+"Role"), &awsiam.RoleProps{
			RoleName:    jsii.String(roleName(cfg.Prefix, spec.Name)),
			AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
			Description: jsii.String(fmt.Sprintf("ceforge %s function (%s%s)", spec.Name, cfg.Prefix, spec.Name)),
		})
		logs := awslogs.NewLogGroup(c, jsii.String(id+"Logs"), &awslogs.LogGroupProps{
			LogGroupName:  jsii.String("/aws/lambda/" + cfg.Prefix + spec.Name),
			Retention:     f.Retention,
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
		// The function writes only its own log group (no AWS managed
		// execution policy).
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("WriteOwnLogs"),
			Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
			Resources: jsii.Strings(*logs.LogGroupArn()),
		}))
		fenv := make(map[string]*string, len(env)+1)
		for k, v := range env {
			fenv[k] = v
		}
		props := &awslambda.FunctionProps{
			FunctionName:  jsii.String(cfg.Prefix + spec.Name),
			Description:   jsii.String(spec.Description),
			Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
			Architecture:  awslambda.Architecture_ARM_64(),
			Handler:       jsii.String("bootstrap"),
			Code:          awslambda.Code_FromAsset(jsii.String(filepath.Join(cfg.AssetDir, spec.Name)), nil),
			MemorySize:    jsii.Number(spec.MemoryMB),
			Timeout:       awscdk.Duration_Seconds(jsii.Number(spec.Timeout.Seconds())),
			Role:          role,
			LogGroup:      logs,
			LoggingFormat: awslambda.LoggingFormat_JSON,
			// With JSON logs Lambda filters by the "level" field and gives
			// lines without one (the EMF metric records) INFO. Filter at
			// INFO (DEBUG when asked for) so metrics always pass; the
			// functions apply CEFORGE_LOG_LEVEL themselves.
			ApplicationLogLevelV2: appLogLevel(cfg.LogLevel),
			SystemLogLevelV2:      awslambda.SystemLogLevel_INFO,
			Environment:           &fenv,
		}
		if spec.Reserved > 0 {
			props.ReservedConcurrentExecutions = jsii.Number(spec.Reserved)
		}
		if spec.MaxEventAge > 0 {
			props.RetryAttempts = jsii.Number(spec.AsyncRetries)
			props.MaxEventAge = awscdk.Duration_Seconds(jsii.Number(spec.MaxEventAge.Seconds()))
		}
		fn := awslambda.NewFunction(c, jsii.String(id), props)
		// CDK makes each function DependsOn its role (and the role's
		// policy) although Role: GetAtt already orders the role; cfn-lint
		// reports that redundancy as W3005. The DependsOn is harmless.
		fn.Node().DefaultChild().(awscdk.CfnResource).AddMetadata(jsii.String("cfn-lint"), map[string]any{
			"config": map[string]any{"ignore_checks": []string{"W3005"}},
		})
		f.Fn[spec.Name] = fn
		f.Role[spec.Name] = role
		f.LogGroup[spec.Name] = logs
	}
	// The api starts sweeps (POST /sweeps) by invoking the sweeper, and
	// hands the CE steps it cannot take (forging Batch resources) to the
	// reconciler: asynchronous invokes of those two functions only.
	f.Fn[FnAPI].AddEnvironment(jsii.String("CEFORGE_SWEEPER_FUNCTION"), f.Fn[FnSweeper].FunctionName(), nil)
	f.Fn[FnAPI].AddEnvironment(jsii.String("CEFORGE_RECONCILER_FUNCTION"), f.Fn[FnReconciler].FunctionName(), nil)
	f.Role[FnAPI].AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("StartSweeps"),
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: jsii.Strings(*f.Fn[FnSweeper].FunctionArn()),
	}))
	f.Role[FnAPI].AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("HandOffProvisioning"),
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: jsii.Strings(*f.Fn[FnReconciler].FunctionArn()),
	}))
	// The trace function hands runs whose trace began, completed or passed
	// their cost limit to the reconciler, which may change runs.
	f.Fn[FnTrace].AddEnvironment(jsii.String("CEFORGE_RECONCILER_FUNCTION"), f.Fn[FnReconciler].FunctionName(), nil)
	f.Role[FnTrace].AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("HandOffRuns"),
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: jsii.Strings(*f.Fn[FnReconciler].FunctionArn()),
	}))
	return f
}

func appLogLevel(level string) awslambda.ApplicationLogLevel {
	if level == "debug" {
		return awslambda.ApplicationLogLevel_DEBUG
	}
	return awslambda.ApplicationLogLevel_INFO
}

// constructID turns a function name into a construct id ("batchevents" ->
// "Batchevents").
func constructID(name string) string {
	return strings.ToUpper(name[:1]) + name[1:]
}

func retention(days int) awslogs.RetentionDays {
	m := map[int]awslogs.RetentionDays{
		1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
		7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
		60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
		150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
		400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS, 731: awslogs.RetentionDays_TWO_YEARS,
		1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 2192: awslogs.RetentionDays_SIX_YEARS,
		2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS, 3288: awslogs.RetentionDays_NINE_YEARS,
		3653: awslogs.RetentionDays_TEN_YEARS,
	}
	r, ok := m[days]
	if !ok {
		panic(fmt.Sprintf("retention %d days not supported (Config.Validate should have caught it)", days))
	}
	return r
}
