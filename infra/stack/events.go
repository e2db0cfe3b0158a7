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
	"github.com/ceforge/ceforge/internal/member"
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
	// MemberBus receives the Batch and EC2 events member accounts forward
	// (the member stack's rules); MemberBatchRule and MemberEC2Rule route
	// them to the same queues. MemberBusPolicy lets the configured member
	// accounts (or organization) put events on it; nil when none is.
	MemberBus                      awsevents.EventBus
	MemberBusPolicy                awsevents.CfnEventBusPolicy
	MemberBatchRule, MemberEC2Rule awsevents.Rule
	ReconcilerSchedule             awsevents.Rule
	SweeperSchedule                awsevents.Rule
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
	rule := func(id, name string, bus awsevents.IEventBus, r eventsrc.Rule, q awssqs.Queue, description string) awsevents.Rule {
		p := &awsevents.EventPattern{Source: jsii.Strings(r.Source), DetailType: jsii.Strings(r.DetailTypes...)}
		if len(cfg.AllowedRegions) > 0 {
			p.Region = jsii.Strings(cfg.AllowedRegions...)
		}
		return awsevents.NewRule(c, jsii.String(id), &awsevents.RuleProps{
			RuleName:     jsii.String(name),
			Description:  jsii.String(description),
			EventBus:     bus,
			EventPattern: p,
			Targets:      &[]awsevents.IRuleTarget{awseventstargets.NewSqsQueue(q, nil)},
		})
	}
	e.BatchRule = rule("BatchJobStateChange", cfg.Prefix+eventsrc.Rules[0].Name, nil, eventsrc.Rules[0], e.BatchQueue, "ceforge: Batch Job State Change (every queue: manual-mode CEs use the user's own)")
	e.EC2Rule = rule("Ec2InstanceEvents", cfg.Prefix+eventsrc.Rules[1].Name, nil, eventsrc.Rules[1], e.EC2Queue, "ceforge: EC2 instance state changes and Spot interruption warnings")

	// Member accounts' events arrive on their own bus (forwarded by the
	// member stack's rules, keeping their account and region) and go to
	// the same queues: the consumers match each event to a run whose
	// compute environment is in that account and region.
	e.MemberBus = awsevents.NewEventBus(c, jsii.String("MemberBus"), &awsevents.EventBusProps{
		EventBusName: jsii.String(member.EventBusName(cfg.Prefix)),
		Description:  jsii.String("ceforge: Batch and EC2 events forwarded by member accounts"),
	})
	e.MemberBusPolicy = memberBusPolicy(c, cfg, e.MemberBus)
	e.MemberBatchRule = rule("MemberBatchJobStateChange", cfg.Prefix+"member-"+eventsrc.Rules[0].Name, e.MemberBus, eventsrc.Rules[0], e.BatchQueue, "ceforge: member accounts' Batch Job State Change")
	e.MemberEC2Rule = rule("MemberEc2InstanceEvents", cfg.Prefix+"member-"+eventsrc.Rules[1].Name, e.MemberBus, eventsrc.Rules[1], e.EC2Queue, "ceforge: member accounts' EC2 instance state changes and Spot interruption warnings")

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

// memberBusPolicy lets the member accounts (or the organization) put
// events on the member bus; nil when none is configured (the bus then
// receives nothing from outside).
func memberBusPolicy(scope constructs.Construct, cfg Config, bus awsevents.EventBus) awsevents.CfnEventBusPolicy {
	var stmt map[string]any
	switch {
	case cfg.MemberOrganization != "":
		stmt = map[string]any{"Principal": "*", "Condition": map[string]any{"StringEquals": map[string]any{"aws:PrincipalOrgID": cfg.MemberOrganization}}}
	case len(cfg.MemberAccounts) > 0:
		var principals []string
		for _, a := range cfg.MemberAccounts {
			principals = append(principals, "arn:"+*awscdk.Aws_PARTITION()+":iam::"+a+":root")
		}
		stmt = map[string]any{"Principal": map[string]any{"AWS": principals}}
	default:
		return nil
	}
	stmt["Sid"] = "MemberAccountsForwardEvents"
	stmt["Effect"] = "Allow"
	stmt["Action"] = "events:PutEvents"
	stmt["Resource"] = bus.EventBusArn()
	return awsevents.NewCfnEventBusPolicy(scope, jsii.String("MemberBusPolicy"), &awsevents.CfnEventBusPolicyProps{
		EventBusName: bus.EventBusName(),
		StatementId:  jsii.String("MemberAccountsForwardEvents"),
		Statement:    stmt,
	})
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
