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
	MaxReceiveCount = 5
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

	e.BatchQueue, e.BatchDLQ = eventQueue(c, "Batch", cfg.Prefix+"batch-events", fns.Fn[FnBatchEvents])
	e.EC2Queue, e.EC2DLQ = eventQueue(c, "Ec2", cfg.Prefix+"ec2-events", fns.Fn[FnEC2Events])

	// Batch: only jobs on our queues (<prefix>*, any region and account so
	// events forwarded from member accounts also match).
	e.BatchRule = awsevents.NewRule(c, jsii.String("BatchJobStateChange"), &awsevents.RuleProps{
		RuleName:    jsii.String(cfg.Prefix + "batch-job-state-change"),
		Description: jsii.String("ceforge: Batch Job State Change on job queues " + cfg.Prefix + "*"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.batch"),
			DetailType: jsii.Strings(DetailBatchJobStateChange),
			Detail: &map[string]any{
				"jobQueue": awsevents.Match_Wildcard(jsii.String(BatchQueuePattern(*awscdk.Aws_PARTITION(), cfg.Prefix))),
			},
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewSqsQueue(e.BatchQueue, nil)},
	})
	// EC2: state changes and Spot interruptions; events carry no tags, so
	// the consumer drops instances that are not ours with one table read.
	e.EC2Rule = awsevents.NewRule(c, jsii.String("Ec2InstanceEvents"), &awsevents.RuleProps{
		RuleName:    jsii.String(cfg.Prefix + "ec2-instance-events"),
		Description: jsii.String("ceforge: EC2 instance state changes and Spot interruption warnings"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.ec2"),
			DetailType: jsii.Strings(DetailEC2StateChange, DetailEC2SpotInterruption),
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewSqsQueue(e.EC2Queue, nil)},
	})

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

// BatchQueuePattern is the EventBridge wildcard matching the ARNs of the job
// queues ceforge forges.
func BatchQueuePattern(partition, prefix string) string {
	return "arn:" + partition + ":batch:*:*:job-queue/" + prefix + "*"
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
