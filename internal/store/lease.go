package store

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// KindLease items are short leases (a log follow's slot): they hold a
// holder id and an expiry, and vanish through the table's TTL. The logs
// function may write these and nothing else (its IAM policy conditions
// writes on this key prefix).
const KindLease Kind = "LEASE"

// Lease takes the lease id for holder until the given time, if nobody
// holds it or the last holder's lease has expired (TTL deletes expired
// items only eventually, so the expiry is checked here). It reports
// whether the lease was taken.
func (s *Store) Lease(ctx context.Context, id, holder string, now, until time.Time) (bool, error) {
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table,
		Item: map[string]types.AttributeValue{
			attrPK:        &types.AttributeValueMemberS{Value: Key(KindLease, id)},
			attrKind:      &types.AttributeValueMemberS{Value: string(KindLease)},
			attrTarget:    &types.AttributeValueMemberS{Value: holder},
			attrExpiresAt: &types.AttributeValueMemberN{Value: fmt.Sprint(until.Unix())},
		},
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR #exp < :now"),
		ExpressionAttributeNames:  map[string]string{"#exp": attrExpiresAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": &types.AttributeValueMemberN{Value: fmt.Sprint(now.Unix())}},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", id, err)
	}
	return true, nil
}

// Release gives the lease id back if holder still holds it.
func (s *Store) Release(ctx context.Context, id, holder string) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &s.table,
		Key:                       pkOf(KindLease, id),
		ConditionExpression:       aws.String("#t = :h"),
		ExpressionAttributeNames:  map[string]string{"#t": attrTarget},
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": &types.AttributeValueMemberS{Value: holder}},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("release lease %s: %w", id, err)
	}
	return nil
}
