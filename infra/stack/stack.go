// Package stack is the ceforge CDK stack: the DynamoDB table, the six
// functions with one least-privilege role each, the HTTP API and the
// log-follow Function URL, the EventBridge rules, queues and schedules, and
// the alarms and dashboard. infra/README.md describes the configuration.
package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Props configures the stack.
type Props struct {
	awscdk.StackProps
	Config Config
}

// Stack is the deployed control plane; its parts are exported for tests.
type Stack struct {
	awscdk.Stack
	Config    Config
	Data      *Data
	Functions *Functions
	Policies  *Policies
	CursorKey awssecretsmanager.Secret
	API       *API
	Events    *Events
	Ops       *Ops
}

// NewCeforgeStack builds the stack. It makes no AWS calls: account and
// region stay tokens unless props.Env sets them.
func NewCeforgeStack(scope constructs.Construct, id string, props *Props) (*Stack, error) {
	if props == nil {
		props = &Props{Config: DefaultConfig()}
	}
	cfg := props.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sp := props.StackProps
	if sp.Description == nil {
		sp.Description = jsii.String("ceforge: serverless control plane for Nextflow pipelines on AWS Batch and EC2")
	}
	st := awscdk.NewStack(scope, jsii.String(id), &sp)
	s := &Stack{Stack: st, Config: cfg}
	// Not ceforge:managed: the sweeper must never consider the control
	// plane its own.
	awscdk.Tags_Of(st).Add(jsii.String("ceforge:component"), jsii.String("control-plane"), nil)

	s.Data = newData(st)
	s.Functions = newFunctions(st, cfg, s.Data.Table.TableName())
	s.Policies = newPolicies(st, cfg, s.Functions, s.Data)
	s.CursorKey = newCursorKey(st, cfg, s.Functions)
	s.API = newAPI(st, cfg, s.Functions)
	s.Events = newEvents(st, cfg, s.Functions)
	s.Ops = newOps(st, cfg, s.Functions, s.Events, s.API)
	addSuppressions(s)

	out := func(id, value, desc string) {
		awscdk.NewCfnOutput(st, jsii.String(id), &awscdk.CfnOutputProps{Value: jsii.String(value), Description: jsii.String(desc)})
	}
	out("ApiUrl", *s.API.HTTPAPI.ApiEndpoint(), "HTTP API endpoint (SigV4, service execute-api)")
	out("LogsUrl", *s.API.LogsURL.Url(), "Log follow/download Function URL (SigV4, service lambda)")
	out("TableName", *s.Data.Table.TableName(), "DynamoDB table")
	out("DashboardName", cfg.Prefix+"control-plane", "CloudWatch dashboard")
	out("ClientPolicyArn", *s.API.ClientPolicy.ManagedPolicyArn(), "Managed policy for ceforge users (API calls, log follow)")
	out("AlarmTopicArn", *s.Ops.Topic.TopicArn(), "SNS topic every alarm notifies (subscribe your on-call endpoint)")
	return s, nil
}
