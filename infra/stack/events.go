package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/ceforge/ceforge/internal/eventsrc"
)

// EventBridge detail types the consumers handle.
const (
	DetailBatchJobStateChange = "Batch Job State Change"
	DetailEC2StateChange      = "EC2 Instance State-change Notification"
	DetailEC2SpotInterruption = "EC2 Spot Instance Interruption Warning"
)

// Queue and schedule tuning.
const (
	// MaxReceiveCount is how often a message is retried before it goes to
	// the dead-letter queue.
	MaxReceiveCount = eventsrc.MaxReceiveCount
	// EventBatchSize and EventBatchWindowSeconds: up to 25 events per
	// invocation, waiting at most one second to fill a batch (latency of
	// time-to-running matters more than invocation count).
	EventBatchSize          = 25
	EventBatchWindowSeconds = 1
	// EventMaxConcurrency caps concurrent invocations per consumer, which
	// caps its DynamoDB and Batch DescribeJobs call rate.
	EventMaxConcurrency = 10
	// ReconcilerSchedule is fixed: the reconciler is the level-triggered
	// repair loop behind the events.
	ReconcilerSchedule = "rate(1 minute)"
)

// Events holds the event queues, rules and schedules.
type Events struct {
	BatchQueue, BatchDLQ awssqs.Queue
	EC2Queue, EC2DLQ     awssqs.Queue
	BatchRule, EC2Rule   awsevents.Rule
	ReconcilerSchedule   awsevents.Rule
	SweeperSchedule      awsevents.Rule
}

func newEvents(scope constructs.Construct, cfg Config, fns *Functions) *Events {
	c := constructs.NewConstruct(scope, jsii.String("Events"))
	e := &Events{}

	e.BatchQueue, e.BatchDLQ = eventQueue(c, "Batch", cfg.Prefix+eventsrc.BatchQueue, fns.Fn[FnBatchEvents])
	e.EC2Queue, e.EC2DLQ = eventQueue(c, "Ec2", cfg.Prefix+eventsrc.EC2Queue, fns.Fn[FnEC2Events])

	// Batch: every job state change of the account in the allowed regions,
	// so runs on manual-mode CEs (the user's own queues) are seen too; the
	// consumer drops other jobs from the event alone. EC2: state changes and
	// Spot interruptions; events carry no tags, so the consumer drops
	// instances that are not ours with one table read. Both patterns come
	// from eventsrc.Rules, which the consumer tests deliver through.
	rule := func(id string, r eventsrc.Rule, q awssqs.Queue, description string) awsevents.Rule {
		p := &awsevents.EventPattern{Source: jsii.Strings(r.Source), DetailType: jsii.Strings(r.DetailTypes...)}
		if len(cfg.AllowedRegions) > 0 {
			p.Region = jsii.Strings(cfg.AllowedRegions...)
		}
		return awsevents.NewRule(c, jsii.String(id), &awsevents.RuleProps{
			RuleName:     jsii.String(cfg.Prefix + r.Name),
			Description:  jsii.String(description),
			EventPattern: p,
			Targets:      &[]awsevents.IRuleTarget{awseventstargets.NewSqsQueue(q, nil)},
		})
	}
	e.BatchRule = rule("BatchJobStateChange", eventsrc.Rules[0], e.BatchQueue, "ceforge: Batch Job State Change (every queue: manual-mode CEs use the user's own)")
	e.EC2Rule = rule("Ec2InstanceEvents", eventsrc.Rules[1], e.EC2Queue, "ceforge: EC2 instance state changes and Spot interruption warnings")

	// Schedules. A failed or dropped tick is repaired by the next one, so
	// the targets do not retry.
	e.ReconcilerSchedule = awsevents.NewRule(c, jsii.String("ReconcilerSchedule"), &awsevents.RuleProps{
		RuleName:    jsii.String(cfg.Prefix + "reconciler-schedule"),
		Description: jsii.String("ceforge: run the reconciler"),
		Schedule:    awsevents.Schedule_Expression(jsii.String(ReconcilerSchedule)),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(fns.Fn[FnReconciler], &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(0),
			MaxEventAge:   awscdk.Duration_Minutes(jsii.Number(1)),
		})},
	})
	e.SweeperSchedule = awsevents.NewRule(c, jsii.String("SweeperSchedule"), &awsevents.RuleProps{
		RuleName:    jsii.String(cfg.Prefix + "sweeper-schedule"),
		Description: jsii.String("ceforge: run the sweeper"),
		Schedule:    awsevents.Schedule_Expression(jsii.String(cfg.SweeperSchedule)),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(fns.Fn[FnSweeper], &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(0),
			MaxEventAge:   awscdk.Duration_Minutes(jsii.Number(5)),
		})},
	})
	return e
}

// eventQueue makes a consumer queue with its own dead-letter queue, both
// encrypted (SQS managed keys, which EventBridge can write to) and
// TLS-only, and subscribes fn with partial batch responses.
func eventQueue(scope constructs.Construct, id, name string, fn awslambda.Function) (awssqs.Queue, awssqs.Queue) {
	dlq := awssqs.NewQueue(scope, jsii.String(id+"DeadLetterQueue"), &awssqs.QueueProps{
		QueueName:       jsii.String(name + "-dlq"),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	timeout := fn.Timeout()
	if timeout == nil {
		panic("event consumer " + name + " has no timeout")
	}
	q := awssqs.NewQueue(scope, jsii.String(id+"Queue"), &awssqs.QueueProps{
		QueueName:  jsii.String(name),
		Encryption: awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL: jsii.Bool(true),
		// AWS's guidance for Lambda consumers: at least six times the
		// function timeout.
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(6 * *timeout.ToSeconds(nil))),
		RetentionPeriod:   awscdk.Duration_Days(jsii.Number(4)),
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue:           dlq,
			MaxReceiveCount: jsii.Number(MaxReceiveCount),
		},
	})
	fn.AddEventSource(awslambdaeventsources.NewSqsEventSource(q, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(EventBatchSize),
		MaxBatchingWindow:       awscdk.Duration_Seconds(jsii.Number(EventBatchWindowSeconds)),
		ReportBatchItemFailures: jsii.Bool(true),
		MaxConcurrency:          jsii.Number(EventMaxConcurrency),
	}))
	return q, dlq
}
