package stack

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/ceforge/ceforge/internal/store"
)

// Table actions per access level. The store issues GetItem, BatchGetItem,
// Query, PutItem, UpdateItem, DeleteItem and TransactWriteItems (whose parts
// are authorized as Put/Update/Delete/ConditionCheckItem).
var (
	tableReadActions  = []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
	tableWriteActions = []string{"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem", "dynamodb:BatchWriteItem"}
)

// Data is the single DynamoDB table of internal/store.
type Data struct {
	Table awsdynamodb.Table
}

func newData(scope constructs.Construct) *Data {
	c := constructs.NewConstruct(scope, jsii.String("Data"))
	str := func(name string) *awsdynamodb.Attribute {
		return &awsdynamodb.Attribute{Name: jsii.String(name), Type: awsdynamodb.AttributeType_STRING}
	}
	table := awsdynamodb.NewTable(c, jsii.String("Table"), &awsdynamodb.TableProps{
		PartitionKey: str(store.PartitionKey),
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		TimeToLiveAttribute: jsii.String(store.TTLAttribute),
		DeletionProtection:  jsii.Bool(true),
		Encryption:          awsdynamodb.TableEncryption_AWS_MANAGED,
		// The table is the system of record: keep it when the stack goes.
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	for _, ix := range store.Indexes() {
		props := &awsdynamodb.GlobalSecondaryIndexProps{
			IndexName:      jsii.String(ix.Name),
			PartitionKey:   str(ix.PartitionKey),
			ProjectionType: awsdynamodb.ProjectionType_ALL,
		}
		if ix.SortKey != "" {
			props.SortKey = str(ix.SortKey)
		}
		table.AddGlobalSecondaryIndex(props)
	}
	return &Data{Table: table}
}

// grant gives role the table actions on the table and its indexes, and
// nothing else.
func (d *Data) grant(role awsiam.Role, write bool) {
	actions := append([]string{}, tableReadActions...)
	sid := "TableRead"
	if write {
		actions = append(actions, tableWriteActions...)
		sid = "TableReadWrite"
	}
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(sid),
		Actions:   jsii.Strings(actions...),
		Resources: jsii.Strings(*d.Table.TableArn(), *d.Table.TableArn()+"/index/*"),
	}))
	logicalID := awscdk.Stack_Of(d.Table).GetLogicalId(d.Table.Node().DefaultChild().(awscdk.CfnElement))
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String(sid + ": the table's global secondary indexes (" + indexNames() + "), queried by the store; the table is the only DynamoDB resource."),
		AppliesTo: &[]any{"Resource::<" + *logicalID + ".Arn>/index/*"},
	}}, jsii.Bool(true))
}

// grantLeases lets role take and release leases (store.KindLease: the log
// function's follow slots) and write nothing else: a condition on the
// partition key (dynamodb:LeadingKeys) keeps it off every other record.
func (d *Data) grantLeases(role awsiam.Role) {
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("FollowSlotLeases"),
		Actions:    jsii.Strings("dynamodb:PutItem", "dynamodb:DeleteItem"),
		Resources:  jsii.Strings(*d.Table.TableArn()),
		Conditions: &map[string]any{"ForAllValues:StringLike": map[string]any{"dynamodb:LeadingKeys": []string{store.Key(store.KindLease, "*")}}},
	}))
}

func indexNames() string {
	var names []string
	for _, ix := range store.Indexes() {
		names = append(names, ix.Name)
	}
	return strings.Join(names, ", ")
}

// grantTrace gives the trace function what its calls need and no more
// (DynamoDB fine-grained access on the partition key): read a run's record
// (its token hash, status and pricing) and its progress items; write only
// progress items (PROGRESS#<run>…) and task items (TASK#<run>#…). It never
// queries an index.
func (d *Data) grantTrace(role awsiam.Role) {
	leading := func(prefixes ...string) *map[string]any {
		return &map[string]any{"ForAllValues:StringLike": map[string]any{"dynamodb:LeadingKeys": prefixes}}
	}
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("ReadRunsAndProgress"),
		Actions:    jsii.Strings("dynamodb:GetItem", "dynamodb:BatchGetItem"),
		Resources:  jsii.Strings(*d.Table.TableArn()),
		Conditions: leading("RUN#*", "PROGRESS#*", "TASK#*"),
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("WriteProgressAndTasks"),
		Actions:    jsii.Strings("dynamodb:PutItem", "dynamodb:UpdateItem"),
		Resources:  jsii.Strings(*d.Table.TableArn()),
		Conditions: leading("PROGRESS#*", "TASK#*"),
	}))
}
