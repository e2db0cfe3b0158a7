package stack

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/ceforge/ceforge/internal/metrics"
)

// Ops holds alarms, the optional alarm topic and the dashboard.
type Ops struct {
	Alarms    []awscloudwatch.Alarm
	Topic     awssns.Topic
	Dashboard awscloudwatch.Dashboard
}

func newOps(scope constructs.Construct, cfg Config, fns *Functions, ev *Events, api *API) *Ops {
	c := constructs.NewConstruct(scope, jsii.String("Ops"))
	o := &Ops{}
	// Every alarm notifies this topic (output AlarmTopicArn: subscribe a
	// pager, chat or ticketing endpoint); alarmEmail adds an e-mail
	// subscription.
	o.Topic = awssns.NewTopic(c, jsii.String("AlarmTopic"), &awssns.TopicProps{
		TopicName:   jsii.String(cfg.Prefix + "alarms"),
		DisplayName: jsii.String("ceforge alarms"),
		EnforceSSL:  jsii.Bool(true),
	})
	if cfg.AlarmEmail != "" {
		o.Topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
	}
	cdknag.NagSuppressions_AddResourceSuppressions(o.Topic, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-SNS2"),
		Reason: jsii.String("Alarm notifications carry alarm names and states only. CloudWatch alarms cannot publish " +
			"to a topic encrypted with the AWS managed SNS key, and a customer managed key for this topic alone " +
			"is not worth its cost; the topic enforces TLS (SNS3)."),
	}}, jsii.Bool(true))

	fiveMin := awscdk.Duration_Minutes(jsii.Number(5))
	alarm := func(id, name, description string, metric awscloudwatch.IMetric, threshold float64) {
		a := awscloudwatch.NewAlarm(c, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String(cfg.Prefix + name),
			AlarmDescription:   jsii.String(description),
			Metric:             metric,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		a.AddAlarmAction(awscloudwatchactions.NewSnsAction(o.Topic))
		o.Alarms = append(o.Alarms, a)
	}
	sum := &awscloudwatch.MetricOptions{Period: fiveMin, Statistic: jsii.String("Sum")}
	for _, name := range FunctionNames {
		fn := fns.Fn[name]
		id := constructID(name)
		alarm(id+"Errors", name+"-errors", fmt.Sprintf("ceforge %s function errors (any in 5 minutes)", name), fn.MetricErrors(sum), 0)
		alarm(id+"Throttles", name+"-throttles", fmt.Sprintf("ceforge %s function throttles (any in 5 minutes)", name), fn.MetricThrottles(sum), 0)
	}
	maxOpts := &awscloudwatch.MetricOptions{Period: fiveMin, Statistic: jsii.String("Maximum")}
	for _, q := range []struct {
		id, name   string
		queue, dlq awssqs.Queue
	}{{"Batch", "batch-events", ev.BatchQueue, ev.BatchDLQ}, {"Ec2", "ec2-events", ev.EC2Queue, ev.EC2DLQ}} {
		alarm(q.id+"DlqDepth", q.name+"-dlq-depth",
			fmt.Sprintf("ceforge %s: messages in the dead-letter queue (failed %d times); inspect, fix, redrive", q.name, MaxReceiveCount),
			q.dlq.MetricApproximateNumberOfMessagesVisible(maxOpts), 0)
		alarm(q.id+"QueueAge", q.name+"-backlog",
			fmt.Sprintf("ceforge %s: oldest message older than 5 minutes (consumer failing or throttled)", q.name),
			q.queue.MetricApproximateAgeOfOldestMessage(maxOpts), 300)
	}
	alarm("Api5xx", "api-5xx", "ceforge API: more than 5 server errors in 5 minutes",
		awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:     jsii.String("AWS/ApiGateway"),
			MetricName:    jsii.String("5xx"),
			DimensionsMap: &map[string]*string{"ApiId": api.HTTPAPI.ApiId(), "Stage": jsii.String("$default")},
			Statistic:     jsii.String("Sum"),
			Period:        fiveMin,
		}), 5)

	o.Dashboard = newDashboard(c, cfg, fns, ev, api)
	return o
}

// search is a CloudWatch SEARCH over one ceforge metric and its dimensions.
func search(label, metric, stat string, periodSeconds int, dims ...string) awscloudwatch.IMetric {
	schema := metrics.Namespace
	for _, d := range dims {
		schema += "," + d
	}
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String(fmt.Sprintf("SEARCH('{%s} MetricName=\"%s\"', '%s', %d)", schema, metric, stat, periodSeconds)),
		Label:      jsii.String(label),
		Period:     awscdk.Duration_Seconds(jsii.Number(periodSeconds)),
	})
}

func newDashboard(scope constructs.Construct, cfg Config, fns *Functions, ev *Events, api *API) awscloudwatch.Dashboard {
	graph := func(title string, width float64, left []awscloudwatch.IMetric, right []awscloudwatch.IMetric) awscloudwatch.IWidget {
		p := &awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Width: jsii.Number(width), Height: jsii.Number(6), Left: &left}
		if len(right) > 0 {
			p.Right = &right
		}
		return awscloudwatch.NewGraphWidget(p)
	}
	fnMetric := func(kind string) []awscloudwatch.IMetric {
		var out []awscloudwatch.IMetric
		for _, name := range FunctionNames {
			opts := &awscloudwatch.MetricOptions{Label: jsii.String(name), Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}
			switch kind {
			case "errors":
				out = append(out, fns.Fn[name].MetricErrors(opts))
			case "invocations":
				out = append(out, fns.Fn[name].MetricInvocations(opts))
			case "duration":
				opts.Statistic = jsii.String("p90")
				out = append(out, fns.Fn[name].MetricDuration(opts))
			}
		}
		return out
	}
	queueMetric := func(f func(q awssqs.Queue, o *awscloudwatch.MetricOptions) awscloudwatch.Metric, stat string) []awscloudwatch.IMetric {
		var out []awscloudwatch.IMetric
		for _, q := range []struct {
			label string
			q     awssqs.Queue
		}{{"batch-events", ev.BatchQueue}, {"batch-events-dlq", ev.BatchDLQ}, {"ec2-events", ev.EC2Queue}, {"ec2-events-dlq", ev.EC2DLQ}} {
			out = append(out, f(q.q, &awscloudwatch.MetricOptions{Label: jsii.String(q.label), Statistic: jsii.String(stat), Period: awscdk.Duration_Minutes(jsii.Number(5))}))
		}
		return out
	}
	apiMetric := func(name, stat string) awscloudwatch.IMetric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:     jsii.String("AWS/ApiGateway"),
			MetricName:    jsii.String(name),
			DimensionsMap: &map[string]*string{"ApiId": api.HTTPAPI.ApiId(), "Stage": jsii.String("$default")},
			Statistic:     jsii.String(stat),
			Label:         jsii.String(name),
			Period:        awscdk.Duration_Minutes(jsii.Number(5)),
		})
	}
	rows := [][]awscloudwatch.IWidget{
		{
			awscloudwatch.NewTextWidget(&awscloudwatch.TextWidgetProps{
				Markdown: jsii.String(fmt.Sprintf("# ceforge (%s)\nRuns, events and sweeps from the functions' Embedded Metric Format logs (namespace `%s`); "+
					"function, queue and API health from AWS metrics.", cfg.Prefix, metrics.Namespace)),
				Width: jsii.Number(24), Height: jsii.Number(2),
			}),
		},
		{
			graph("Runs by status (status changes / 5 min)", 12, []awscloudwatch.IMetric{search("", metrics.RunStatus, "Sum", 300, "Status")}, nil),
			graph("Time to running (ms): p50, p90", 12, []awscloudwatch.IMetric{
				search("p50", metrics.TimeToRunning, "p50", 300, "Platform"),
				search("p90", metrics.TimeToRunning, "p90", 300, "Platform"),
			}, nil),
		},
		{
			graph("Event lag (ms, p90)", 12, []awscloudwatch.IMetric{search("p90", metrics.EventLag, "p90", 300, "Kind")}, nil),
			graph("Events processed by outcome", 12, []awscloudwatch.IMetric{search("", metrics.EventsProcessed, "Sum", 300, "Kind", "Outcome")}, nil),
		},
		{
			graph("Sweeper: items deleted", 12, []awscloudwatch.IMetric{search("", metrics.SweepItemsDeleted, "Sum", 3600, "ResourceKind")}, nil),
			graph("Sweeper: estimated dollars saved per month", 12, []awscloudwatch.IMetric{
				awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
					Namespace:  jsii.String(metrics.Namespace),
					MetricName: jsii.String(metrics.SweepDollarsSaved),
					Statistic:  jsii.String("Sum"),
					Period:     awscdk.Duration_Hours(jsii.Number(1)),
					Label:      jsii.String("USD / month"),
				}),
			}, nil),
		},
		{
			graph("Function invocations", 8, fnMetric("invocations"), nil),
			graph("Function errors", 8, fnMetric("errors"), nil),
			graph("Function duration p90 (ms)", 8, fnMetric("duration"), nil),
		},
		{
			graph("Queue depth", 8, queueMetric(func(q awssqs.Queue, o *awscloudwatch.MetricOptions) awscloudwatch.Metric {
				return q.MetricApproximateNumberOfMessagesVisible(o)
			}, "Maximum"), nil),
			graph("Oldest message age (s)", 8, queueMetric(func(q awssqs.Queue, o *awscloudwatch.MetricOptions) awscloudwatch.Metric {
				return q.MetricApproximateAgeOfOldestMessage(o)
			}, "Maximum"), nil),
			graph("API requests and errors", 8,
				[]awscloudwatch.IMetric{apiMetric("Count", "Sum"), apiMetric("4xx", "Sum"), apiMetric("5xx", "Sum")},
				[]awscloudwatch.IMetric{apiMetric("Latency", "p90")}),
		},
	}
	widgets := make([]*[]awscloudwatch.IWidget, 0, len(rows))
	for i := range rows {
		widgets = append(widgets, &rows[i])
	}
	return awscloudwatch.NewDashboard(scope, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName:   jsii.String(cfg.Prefix + "control-plane"),
		DefaultInterval: awscdk.Duration_Hours(jsii.Number(24)),
		Widgets:         &widgets,
	})
}
