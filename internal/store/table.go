package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TableAdmin is the part of the DynamoDB client that creates tables.
type TableAdmin interface {
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTimeToLive(context.Context, *dynamodb.UpdateTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// CreateTable creates the table with its indexes (local and test use; in AWS
// the CDK app owns it). Creating a table that exists is done.
func CreateTable(ctx context.Context, db TableAdmin, table string) error {
	s := func(name string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: types.ScalarAttributeTypeS}
	}
	var gsis []types.GlobalSecondaryIndex
	defs := []types.AttributeDefinition{s(attrPK)}
	defined := map[string]bool{attrPK: true}
	for _, ix := range Indexes() {
		gsis = append(gsis, types.GlobalSecondaryIndex{
			IndexName: aws.String(ix.Name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(ix.PartitionKey), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(ix.SortKey), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		})
		for _, a := range []string{ix.PartitionKey, ix.SortKey} {
			if !defined[a] {
				defs, defined[a] = append(defs, s(a)), true
			}
		}
	}
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:              aws.String(table),
		BillingMode:            types.BillingModePayPerRequest,
		AttributeDefinitions:   defs,
		KeySchema:              []types.KeySchemaElement{{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: gsis,
	})
	var inUse *types.ResourceInUseException
	if errors.As(err, &inUse) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	if err := dynamodb.NewTableExistsWaiter(db).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", table, err)
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attrExpiresAt), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("enable ttl on %s: %w", table, err)
	}
	return nil
}

// TTLAttribute is the table's time-to-live attribute (for the CDK app).
const TTLAttribute = attrExpiresAt

// IndexSpec describes a global secondary index (for the CDK app).
type IndexSpec struct{ Name, PartitionKey, SortKey string }

// Indexes lists the table's global secondary indexes; the CDK app builds
// the production table from this so both stay in step.
func Indexes() []IndexSpec {
	return []IndexSpec{
		{IndexByKind, attrKind, attrCreated},
		{IndexByStatus, attrKindStatus, attrCreated},
		{IndexByParent, attrParent, attrCreated},
		{IndexTasksByDuration, attrTaskRun, attrTaskDuration},
		{IndexTasksByCost, attrTaskRun, attrTaskCost},
	}
}

// PartitionKey is the table's partition key attribute (for the CDK app).
const PartitionKey = attrPK
