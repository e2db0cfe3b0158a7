// Package store is ceforge's DynamoDB single table: conditional creates,
// optimistic versions, paged listings by kind, status and parent compute
// environment, and the monotonic status transition that makes at-least-once,
// out-of-order event delivery harmless.
package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Kind is the type of a record; it prefixes the partition key ("RUN#<id>").
type Kind string

// Record kinds of the single table.
const (
	KindCE          Kind = "CE"
	KindRun         Kind = "RUN"
	KindSweep       Kind = "SWEEP"
	KindInstance    Kind = "INSTANCE"    // reverse index: EC2 instance id -> run id
	KindJob         Kind = "JOB"         // reverse index: Batch job id -> run id
	KindIdempotency Kind = "IDEMPOTENCY" // launch idempotency key -> run id
	KindCEName      Kind = "CENAME"      // compute-environment name guard (uniqueness)
	KindSighting    Kind = "SIGHTING"    // the sweeper's first sighting of an orphan volume
	KindCERuns      Kind = "CERUNS"      // active-run count of a compute environment (launch vs delete)
	KindTraceSecret Kind = "TRACESECRET" // a run's progress-token secret, until the reconciler deletes it
	KindCredential  Kind = "CRED"        // registered member-account credentials (a role and its External ID)
	KindCredName    Kind = "CREDNAME"    // credentials name guard (uniqueness)
	KindCredRole    Kind = "CREDROLE"    // guard: digest of role ARN + External ID -> credentials id (what may be assumed)
	KindCredUse     Kind = "CREDUSE"     // count of the compute environments (not DELETED) naming a credentials id
	KindSecret      Kind = "SECRET"      // pipeline secret (name, location, dates; never the value)
	KindSecretName  Kind = "SECRETNAME"  // pipeline secret name guard, per account and region
)

// Attribute and index names of the table.
const (
	attrPK         = "pk"
	attrKind       = "recordKind" // not "kind": runs have a "kind" field of their own
	attrCreated    = "created"    // "<createdAt RFC3339Nano>#<id>", sort key of every index
	attrKindStatus = "kindStatus" // "<kind>#<status>"
	attrParent     = "parent"     // "CE#<computeEnvId>"
	attrStatusRank = "statusRank"
	attrVersion    = "version"
	attrExpiresAt  = "expiresAt"   // TTL, epoch seconds
	attrTarget     = "target"      // reverse indexes and guards: the id they point to
	attrPrint      = "fingerprint" // guards: what the guarded request was (idempotency keys)
	attrStatusAt   = "statusAt"    // epoch ms of the observation that set the status (Transition)
	attrCount      = "count"       // counters (WithCount)

	IndexByKind   = "byKind"
	IndexByStatus = "byStatus"
	IndexByParent = "byParent"

	// Task indexes (internal/progress): a run's tasks by duration and by
	// cost. Their keys are strings: the run id, and the figure zero-padded.
	IndexTasksByDuration = "byTaskDuration"
	IndexTasksByCost     = "byTaskCost"
	attrTaskRun          = "taskRun"
	attrTaskDuration     = "taskDuration"
	attrTaskCost         = "taskCost"

	// MaxPageSize caps List pages.
	MaxPageSize = 100
)

// Index attributes, for packages that write items of their own into the
// table's indexes (internal/progress overloads them for a run's tasks).
const (
	AttrKind         = attrKind
	AttrCreated      = attrCreated
	AttrKindStatus   = attrKindStatus
	AttrParent       = attrParent
	AttrTaskRun      = attrTaskRun
	AttrTaskDuration = attrTaskDuration
	AttrTaskCost     = attrTaskCost
)

// Errors callers branch on.
var (
	ErrNotFound  = errors.New("record not found")
	ErrExists    = errors.New("record already exists")
	ErrConflict  = errors.New("record was changed concurrently (version mismatch)")
	ErrBadCursor = errors.New("invalid pagination cursor")
	// ErrCheckFailed: a condition on another item (WithCheck) did not hold.
	ErrCheckFailed = errors.New("a checked record is not in the required state")
)

// CheckError says which checked item (WithCheck) failed its condition.
type CheckError struct {
	Kind Kind
	ID   string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("%s %q is not in the required state", e.Kind, e.ID)
}

// Unwrap makes errors.Is(err, ErrCheckFailed) true.
func (e *CheckError) Unwrap() error { return ErrCheckFailed }

// ExistsError says which key of a conditional create already existed.
type ExistsError struct {
	Kind Kind
	ID   string
}

func (e *ExistsError) Error() string { return fmt.Sprintf("%s %q already exists", e.Kind, e.ID) }

// Unwrap makes errors.Is(err, ErrExists) true.
func (e *ExistsError) Unwrap() error { return ErrExists }

// DynamoAPI is the part of the DynamoDB client the store uses.
type DynamoAPI interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Store reads and writes ceforge records.
type Store struct {
	db    DynamoAPI
	table string
	now   func() time.Time
}

// New returns a Store on the given table.
func New(db DynamoAPI, table string) *Store {
	return &Store{db: db, table: table, now: time.Now}
}

// Table returns the table name.
func (s *Store) Table() string { return s.table }

// Key returns the partition key of a record.
func Key(kind Kind, id string) string { return string(kind) + "#" + id }

var (
	encOpts = func(o *attributevalue.EncoderOptions) { o.TagKey = "json" }
	decOpts = func(o *attributevalue.DecoderOptions) { o.TagKey = "json" }
)

// Marshal encodes a domain value (json tags) as a DynamoDB item.
func Marshal(v any) (map[string]types.AttributeValue, error) {
	return attributevalue.MarshalMapWithOptions(v, encOpts)
}

// Unmarshal decodes a DynamoDB item into a domain value (json tags).
func Unmarshal(item map[string]types.AttributeValue, out any) error {
	return attributevalue.UnmarshalMapWithOptions(item, out, decOpts)
}

// Option adjusts the item written by Create or Save.
type Option func(*writeOpts)

type writeOpts struct {
	rank    int
	expires time.Time
	guards  []guard
	checks  []Check
	counts  []Count
}

type guard struct {
	kind        Kind
	id          string
	fingerprint string
	// listed guards carry the index attributes, so List finds them by kind.
	listed bool
}

// WithStatusRank records the rank of the item's current status, used by
// Transition to move only forward.
func WithStatusRank(rank int) Option { return func(o *writeOpts) { o.rank = rank } }

// WithExpiry makes DynamoDB's TTL delete the item after t.
func WithExpiry(t time.Time) Option { return func(o *writeOpts) { o.expires = t } }

// WithGuard writes, in the same transaction, a guard item kind#id pointing at
// the record; the create fails with *ExistsError if the guard exists. Used
// for unique names, reverse indexes and idempotency keys.
func WithGuard(kind Kind, id string) Option {
	return func(o *writeOpts) { o.guards = append(o.guards, guard{kind: kind, id: id}) }
}

// WithFingerprintedGuard is WithGuard whose guard also keeps fingerprint
// (for an idempotency key: a digest of the request it was first used
// with), read back with GetGuard.
func WithFingerprintedGuard(kind Kind, id, fingerprint string) Option {
	return func(o *writeOpts) { o.guards = append(o.guards, guard{kind: kind, id: id, fingerprint: fingerprint}) }
}

// WithListedGuard is WithGuard for a guard that List must find by its kind
// (work left to do later, such as deleting a run's token secret).
func WithListedGuard(kind Kind, id string) Option {
	return func(o *writeOpts) { o.guards = append(o.guards, guard{kind: kind, id: id, listed: true}) }
}

// Check is a condition on another record, checked in the same transaction
// as the write it goes with (WithCheck). Build it with StatusIs or CountAtMost.
type Check struct {
	Kind   Kind
	ID     string
	expr   string
	values map[string]types.AttributeValue
}

// StatusIs checks that the record kind#id exists with the given status.
func StatusIs(kind Kind, id, status string) Check {
	return Check{Kind: kind, ID: id, expr: "attribute_exists(pk) AND #status = :want",
		values: map[string]types.AttributeValue{":want": &types.AttributeValueMemberS{Value: status}}}
}

// CountAtMost checks that the counter kind#id (WithCount) is at most n; a
// counter never written counts zero.
func CountAtMost(kind Kind, id string, n int64) Check {
	return Check{Kind: kind, ID: id, expr: "attribute_not_exists(#count) OR #count <= :want",
		values: map[string]types.AttributeValue{":want": &types.AttributeValueMemberN{Value: fmt.Sprint(n)}}}
}

// WithCheck makes a Create or Save apply only if c holds, in one
// transaction; otherwise it fails with *CheckError.
func WithCheck(c Check) Option { return func(o *writeOpts) { o.checks = append(o.checks, c) } }

// Count adds Delta to the counter item kind#id in the same transaction as
// the write it goes with (a run's create and its end, for example).
type Count struct {
	Kind  Kind
	ID    string
	Delta int64
}

// WithCount adjusts a counter in the same transaction as a Create or a Save.
func WithCount(c Count) Option { return func(o *writeOpts) { o.counts = append(o.counts, c) } }

// GetCount reads a counter (zero when never written).
func (s *Store) GetCount(ctx context.Context, kind Kind, id string) (int64, error) {
	res, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: pkOf(kind, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return 0, fmt.Errorf("get %s %s: %w", kind, id, err)
	}
	return numberAttr(res.Item, attrCount), nil
}

func (s *Store) checkItem(c Check) types.TransactWriteItem {
	names := map[string]string{}
	if strings.Contains(c.expr, "#status") {
		names["#status"] = "status"
	}
	if strings.Contains(c.expr, "#count") {
		names["#count"] = attrCount
	}
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: &s.table, Key: pkOf(c.Kind, c.ID), ConditionExpression: aws.String(c.expr),
		ExpressionAttributeNames: names, ExpressionAttributeValues: c.values,
	}}
}

func (s *Store) countItem(c Count) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName: &s.table, Key: pkOf(c.Kind, c.ID),
		UpdateExpression:         aws.String("SET #kind = :kind ADD #count :d"),
		ExpressionAttributeNames: map[string]string{"#kind": attrKind, "#count": attrCount},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":kind": &types.AttributeValueMemberS{Value: string(c.Kind)},
			":d":    &types.AttributeValueMemberN{Value: fmt.Sprint(c.Delta)},
		},
	}}
}

// transact runs a transaction, retrying a few times when it was cancelled
// only because another transaction touched one of its items at the same
// time (TransactionConflict: the SDK does not retry it). Counters make
// that expected: concurrent launches on one compute environment share one.
func (s *Store) transact(ctx context.Context, items []types.TransactWriteItem) error {
	var err error
	for attempt := 0; attempt < transactAttempts; attempt++ {
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if !transactionConflict(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * time.Duration(5+rand.IntN(20)) * time.Millisecond):
		}
	}
	return err
}

const transactAttempts = 6

func transactionConflict(err error) bool {
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		conflict := false
		for _, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "TransactionConflict":
				conflict = true
			case "", "None":
			default:
				return false // a condition failed: that is an answer, not a conflict
			}
		}
		return conflict
	}
	var tc *types.TransactionConflictException
	return errors.As(err, &tc)
}

// cancelled returns the index of the first item whose condition failed in a
// cancelled transaction, or -1.
func cancelled(err error) int {
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for i, r := range tce.CancellationReasons {
			if aws.ToString(r.Code) == "ConditionalCheckFailed" {
				return i
			}
		}
	}
	return -1
}

// item builds the stored item: the domain fields plus keys and index attributes.
func (s *Store) item(kind Kind, id string, v any, version int64, o writeOpts) (map[string]types.AttributeValue, error) {
	item, err := Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("marshal %s %s: %w", kind, id, err)
	}
	item[attrPK] = &types.AttributeValueMemberS{Value: Key(kind, id)}
	item[attrKind] = &types.AttributeValueMemberS{Value: string(kind)}
	item[attrVersion] = &types.AttributeValueMemberN{Value: fmt.Sprint(version)}
	created := stringAttr(item, "createdAt")
	if created == "" {
		created = s.now().UTC().Format(time.RFC3339Nano)
	}
	item[attrCreated] = &types.AttributeValueMemberS{Value: created + "#" + id}
	if st := stringAttr(item, "status"); st != "" {
		item[attrKindStatus] = &types.AttributeValueMemberS{Value: string(kind) + "#" + st}
	}
	if ce := stringAttr(item, "computeEnvId"); ce != "" && kind != KindCE {
		item[attrParent] = &types.AttributeValueMemberS{Value: Key(KindCE, ce)}
	}
	if o.rank != 0 {
		item[attrStatusRank] = &types.AttributeValueMemberN{Value: fmt.Sprint(o.rank)}
	}
	if !o.expires.IsZero() {
		item[attrExpiresAt] = &types.AttributeValueMemberN{Value: fmt.Sprint(o.expires.Unix())}
	}
	return item, nil
}

func stringAttr(item map[string]types.AttributeValue, name string) string {
	if s, ok := item[name].(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func numberAttr(item map[string]types.AttributeValue, name string) int64 {
	if n, ok := item[name].(*types.AttributeValueMemberN); ok {
		var v int64
		fmt.Sscan(n.Value, &v)
		return v
	}
	return 0
}

func pkOf(kind Kind, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: &types.AttributeValueMemberS{Value: Key(kind, id)}}
}

// Create writes a new record at version 1; it never overwrites. With guards,
// the record and its guards are written atomically.
func (s *Store) Create(ctx context.Context, kind Kind, id string, v any, opts ...Option) error {
	var o writeOpts
	for _, opt := range opts {
		opt(&o)
	}
	item, err := s.item(kind, id, v, 1, o)
	if err != nil {
		return err
	}
	notExists := aws.String("attribute_not_exists(pk)")
	if len(o.guards) == 0 && len(o.checks) == 0 && len(o.counts) == 0 {
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item, ConditionExpression: notExists})
		if isConditionFailed(err) {
			return &ExistsError{Kind: kind, ID: id}
		}
		if err != nil {
			return fmt.Errorf("create %s %s: %w", kind, id, err)
		}
		return nil
	}
	// The record, its guards, checks and counters: all or nothing.
	items := []types.TransactWriteItem{{Put: &types.Put{TableName: &s.table, Item: item, ConditionExpression: notExists}}}
	for _, g := range o.guards {
		gi := s.guardItem(g, id, o.expires)
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: gi, ConditionExpression: notExists}})
	}
	for _, c := range o.checks {
		items = append(items, s.checkItem(c))
	}
	for _, c := range o.counts {
		items = append(items, s.countItem(c))
	}
	err = s.transact(ctx, items)
	switch i := cancelled(err); {
	case i == 0:
		return &ExistsError{Kind: kind, ID: id}
	case i > 0 && i <= len(o.guards):
		g := o.guards[i-1]
		return &ExistsError{Kind: g.kind, ID: g.id}
	case i > len(o.guards):
		c := o.checks[i-1-len(o.guards)]
		return &CheckError{Kind: c.Kind, ID: c.ID}
	}
	if err != nil {
		return fmt.Errorf("create %s %s: %w", kind, id, err)
	}
	return nil
}

func (s *Store) guardItem(g guard, target string, expires time.Time) map[string]types.AttributeValue {
	gi := map[string]types.AttributeValue{
		attrPK:     &types.AttributeValueMemberS{Value: Key(g.kind, g.id)},
		attrKind:   &types.AttributeValueMemberS{Value: string(g.kind)},
		attrTarget: &types.AttributeValueMemberS{Value: target},
	}
	if g.fingerprint != "" {
		gi[attrPrint] = &types.AttributeValueMemberS{Value: g.fingerprint}
	}
	if !expires.IsZero() {
		gi[attrExpiresAt] = &types.AttributeValueMemberN{Value: fmt.Sprint(expires.Unix())}
	}
	if g.listed {
		gi[attrCreated] = &types.AttributeValueMemberS{Value: s.now().UTC().Format(time.RFC3339Nano) + "#" + g.id}
	}
	return gi
}

// Guard is a guard item as List returns it: its kind, id and target.
type Guard struct {
	ID     string
	Target string
}

// Guards lists the listed guards of a kind (WithListedGuard), oldest first.
func (s *Store) Guards(ctx context.Context, kind Kind, limit int) ([]Guard, error) {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName: &s.table, IndexName: aws.String(IndexByKind), ScanIndexForward: aws.Bool(true),
		KeyConditionExpression:    aws.String("#k = :k"),
		ExpressionAttributeNames:  map[string]string{"#k": attrKind},
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": &types.AttributeValueMemberS{Value: string(kind)}},
		Limit:                     aws.Int32(int32(max(1, min(limit, 1000)))),
	})
	if err != nil {
		return nil, fmt.Errorf("list %s guards: %w", kind, err)
	}
	res := make([]Guard, 0, len(out.Items))
	for _, it := range out.Items {
		res = append(res, Guard{ID: strings.TrimPrefix(stringAttr(it, attrPK), string(kind)+"#"), Target: stringAttr(it, attrTarget)})
	}
	return res, nil
}

// Get reads a record into out. It returns the stored version.
func (s *Store) Get(ctx context.Context, kind Kind, id string, out any) (int64, error) {
	res, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: pkOf(kind, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return 0, fmt.Errorf("get %s %s: %w", kind, id, err)
	}
	if res.Item == nil {
		return 0, fmt.Errorf("get %s %s: %w", kind, id, ErrNotFound)
	}
	if err := Unmarshal(res.Item, out); err != nil {
		return 0, fmt.Errorf("decode %s %s: %w", kind, id, err)
	}
	return numberAttr(res.Item, attrVersion), nil
}

// Save replaces a record if its stored version is still version, and returns
// the new version. A concurrent change gives ErrConflict; a failed
// WithCheck gives *CheckError.
func (s *Store) Save(ctx context.Context, kind Kind, id string, v any, version int64, opts ...Option) (int64, error) {
	var o writeOpts
	for _, opt := range opts {
		opt(&o)
	}
	item, err := s.item(kind, id, v, version+1, o)
	if err != nil {
		return 0, err
	}
	if o.rank == 0 {
		// Keep the rank Transition relies on when the caller did not restate it.
		cur, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: pkOf(kind, id), ConsistentRead: aws.Bool(true),
			ProjectionExpression: aws.String(attrStatusRank + ", " + attrStatusAt)})
		if err != nil {
			return 0, fmt.Errorf("save %s %s: %w", kind, id, err)
		}
		for _, a := range []string{attrStatusRank, attrStatusAt} {
			if r, ok := cur.Item[a]; ok {
				item[a] = r
			}
		}
	}
	put := &types.Put{
		TableName:                 &s.table,
		Item:                      item,
		ConditionExpression:       aws.String("attribute_exists(pk) AND version = :v"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: fmt.Sprint(version)}},
	}
	if len(o.checks) > 0 || len(o.counts) > 0 {
		items := []types.TransactWriteItem{{Put: put}}
		for _, c := range o.checks {
			items = append(items, s.checkItem(c))
		}
		for _, c := range o.counts {
			items = append(items, s.countItem(c))
		}
		err = s.transact(ctx, items)
		switch i := cancelled(err); {
		case i == 0:
			return 0, fmt.Errorf("save %s %s at version %d: %w", kind, id, version, ErrConflict)
		case i > 0 && i <= len(o.checks):
			c := o.checks[i-1]
			return 0, fmt.Errorf("save %s %s: %w", kind, id, &CheckError{Kind: c.Kind, ID: c.ID})
		}
		if err != nil {
			return 0, fmt.Errorf("save %s %s: %w", kind, id, err)
		}
		return version + 1, nil
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: put.TableName, Item: put.Item, ConditionExpression: put.ConditionExpression,
		ExpressionAttributeValues: put.ExpressionAttributeValues,
	})
	if isConditionFailed(err) {
		return 0, fmt.Errorf("save %s %s at version %d: %w", kind, id, version, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("save %s %s: %w", kind, id, err)
	}
	return version + 1, nil
}

// Delete removes a record and any guards named with WithGuard (unconditionally:
// deleting what is already gone is done).
func (s *Store) Delete(ctx context.Context, kind Kind, id string, opts ...Option) error {
	var o writeOpts
	for _, opt := range opts {
		opt(&o)
	}
	keys := []map[string]types.AttributeValue{pkOf(kind, id)}
	for _, g := range o.guards {
		keys = append(keys, pkOf(g.kind, g.id))
	}
	for _, k := range keys {
		if _, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: k}); err != nil {
			return fmt.Errorf("delete %s: %w", stringAttr(k, attrPK), err)
		}
	}
	return nil
}

// DeleteChecked removes an existing record and the guards named with
// WithGuard in one transaction that applies only while every WithCheck holds (credentials
// in use by a compute environment stay, for example). A missing record is
// ErrNotFound; a failed check *CheckError.
func (s *Store) DeleteChecked(ctx context.Context, kind Kind, id string, opts ...Option) error {
	var o writeOpts
	for _, opt := range opts {
		opt(&o)
	}
	items := []types.TransactWriteItem{{Delete: &types.Delete{TableName: &s.table, Key: pkOf(kind, id),
		ConditionExpression: aws.String("attribute_exists(pk)")}}}
	for _, c := range o.checks {
		items = append(items, s.checkItem(c))
	}
	for _, g := range o.guards {
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{TableName: &s.table, Key: pkOf(g.kind, g.id)}})
	}
	err := s.transact(ctx, items)
	switch i := cancelled(err); {
	case i == 0:
		return fmt.Errorf("delete %s %s: %w", kind, id, ErrNotFound)
	case i > 0 && i <= len(o.checks):
		c := o.checks[i-1]
		return fmt.Errorf("delete %s %s: %w", kind, id, &CheckError{Kind: c.Kind, ID: c.ID})
	}
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, id, err)
	}
	return nil
}

// PutRef writes (or overwrites) a reverse-index item kind#id -> target.
func (s *Store) PutRef(ctx context.Context, kind Kind, id, target string, opts ...Option) error {
	var o writeOpts
	for _, opt := range opts {
		opt(&o)
	}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: s.guardItem(guard{kind: kind, id: id}, target, o.expires)})
	if err != nil {
		return fmt.Errorf("put %s %s: %w", kind, id, err)
	}
	return nil
}

// GetRef reads the target of a reverse-index or guard item.
func (s *Store) GetRef(ctx context.Context, kind Kind, id string) (string, error) {
	res, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: pkOf(kind, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("get %s %s: %w", kind, id, err)
	}
	if res.Item == nil {
		return "", fmt.Errorf("get %s %s: %w", kind, id, ErrNotFound)
	}
	return stringAttr(res.Item, attrTarget), nil
}

// GetGuard reads a guard: its target and fingerprint ("" when it was
// written without one).
func (s *Store) GetGuard(ctx context.Context, kind Kind, id string) (target, fingerprint string, err error) {
	res, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: pkOf(kind, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return "", "", fmt.Errorf("get %s %s: %w", kind, id, err)
	}
	if res.Item == nil {
		return "", "", fmt.Errorf("get %s %s: %w", kind, id, ErrNotFound)
	}
	return stringAttr(res.Item, attrTarget), stringAttr(res.Item, attrPrint), nil
}

// maxBatchGet is how many keys one BatchGetItem takes.
const maxBatchGet = 100

// GetRefs reads the targets of reverse-index items of one kind, many at
// once (consistent, one BatchGetItem per 100 ids); ids without an item are
// absent from the result.
func (s *Store) GetRefs(ctx context.Context, kind Kind, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	seen := map[string]bool{}
	var keys []map[string]types.AttributeValue
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			keys = append(keys, pkOf(kind, id))
		}
	}
	prefix := string(kind) + "#"
	for start := 0; start < len(keys); start += maxBatchGet {
		pending := map[string]types.KeysAndAttributes{s.table: {
			Keys: keys[start:min(start+maxBatchGet, len(keys))], ConsistentRead: aws.Bool(true),
			ProjectionExpression: aws.String("#pk, #t"), ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#t": attrTarget},
		}}
		for attempt := 0; len(pending) > 0; attempt++ {
			if attempt == transactAttempts {
				return nil, fmt.Errorf("get %s refs: keys still unprocessed after %d attempts", kind, attempt)
			}
			res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return nil, fmt.Errorf("get %s refs: %w", kind, err)
			}
			for _, item := range res.Responses[s.table] {
				out[strings.TrimPrefix(stringAttr(item, attrPK), prefix)] = stringAttr(item, attrTarget)
			}
			pending = res.UnprocessedKeys
			if len(pending) > 0 {
				time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
			}
		}
	}
	return out, nil
}

// Move is a status change for Transition.
type Move struct {
	Status string
	// Rank orders statuses: a move applies when Rank is above the stored
	// rank or, with Revisable, equal to it with another Status and an At
	// later than the stored status's time.
	Rank int
	// Revisable: the statuses of this rank replace each other on newer
	// evidence (RUNNING and UNKNOWN); without it a rank is final once
	// reached (terminal statuses: the first recorded stays).
	Revisable bool
	// At is when the change was observed (stored as the status's time).
	At time.Time
	// Set holds further attributes to write with the change (timestamps,
	// exit code, reason), keyed by their json names or dotted paths; a nil
	// value removes the attribute.
	Set map[string]any
	// Count, when set, is adjusted in the same transaction (a run's end
	// releases its compute environment's active-run count).
	Count *Count
}

// Transition applies m in one conditional update (see Move.Rank). A
// duplicate or stale move changes nothing and returns (false, nil); a
// missing record returns ErrNotFound.
func (s *Store) Transition(ctx context.Context, kind Kind, id string, m Move) (bool, error) {
	names := map[string]string{"#status": "status", "#ks": attrKindStatus, "#rank": attrStatusRank, "#v": attrVersion, "#at": attrStatusAt}
	values := map[string]types.AttributeValue{
		":status": &types.AttributeValueMemberS{Value: m.Status},
		":ks":     &types.AttributeValueMemberS{Value: string(kind) + "#" + m.Status},
		":rank":   &types.AttributeValueMemberN{Value: fmt.Sprint(m.Rank)},
		":at":     &types.AttributeValueMemberN{Value: fmt.Sprint(m.At.UnixMilli())},
		":one":    &types.AttributeValueMemberN{Value: "1"},
	}
	sets, removes, err := setClauses(m.Set, names, values)
	if err != nil {
		return false, fmt.Errorf("transition %s %s: %w", kind, id, err)
	}
	sets = append([]string{"#status = :status", "#ks = :ks", "#rank = :rank", "#at = :at"}, sets...)
	expr := "SET " + strings.Join(sets, ", ") + " ADD #v :one"
	if len(removes) > 0 {
		expr += " REMOVE " + strings.Join(removes, ", ")
	}
	cond := "attribute_exists(pk) AND (attribute_not_exists(#rank) OR #rank < :rank"
	if m.Revisable {
		cond += " OR (#rank = :rank AND #status <> :status AND (attribute_not_exists(#at) OR #at < :at))"
	}
	cond += ")"
	update := &types.Update{
		TableName:                           &s.table,
		Key:                                 pkOf(kind, id),
		UpdateExpression:                    aws.String(expr),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if m.Count != nil {
		err = s.transact(ctx, []types.TransactWriteItem{{Update: update}, s.countItem(*m.Count)})
		if cancelled(err) == 0 {
			err = &types.ConditionalCheckFailedException{Message: aws.String("transaction: record condition failed")}
		}
	} else {
		_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: update.TableName, Key: update.Key, UpdateExpression: update.UpdateExpression,
			ConditionExpression: update.ConditionExpression, ExpressionAttributeNames: names,
			ExpressionAttributeValues: values, ReturnValuesOnConditionCheckFailure: update.ReturnValuesOnConditionCheckFailure,
		})
	}
	if err == nil {
		return true, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if ccf.Item == nil {
			// The emulator may not return the old item: tell "missing" from "stale" with one read.
			res, gerr := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: pkOf(kind, id), ProjectionExpression: aws.String(attrPK)})
			if gerr != nil {
				return false, fmt.Errorf("transition %s %s: %w", kind, id, gerr)
			}
			if res.Item == nil {
				return false, fmt.Errorf("transition %s %s: %w", kind, id, ErrNotFound)
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("transition %s %s to %s: %w", kind, id, m.Status, err)
}

// Patch sets attributes on an existing record without touching its status
// (counters, backend references); a nil value removes the attribute. With
// ifVersion > 0 it applies only at that version (ErrConflict otherwise).
func (s *Store) Patch(ctx context.Context, kind Kind, id string, set map[string]any, ifVersion int64) error {
	return s.PatchWithRefs(ctx, kind, id, set, ifVersion)
}

// Ref names a reverse-index item (kind#id) that points at a record.
type Ref struct {
	Kind Kind
	ID   string
}

// PatchWithRefs is Patch plus, in the same transaction, reverse-index items
// pointing at the record (e.g. the EC2 instance id of a run): one call.
func (s *Store) PatchWithRefs(ctx context.Context, kind Kind, id string, set map[string]any, ifVersion int64, refs ...Ref) error {
	var c Cond
	if ifVersion > 0 {
		c = Cond{expr: "#v = :ver", values: map[string]types.AttributeValue{":ver": &types.AttributeValueMemberN{Value: fmt.Sprint(ifVersion)}}}
	}
	err := s.patch(ctx, kind, id, set, c, refs)
	if errors.Is(err, errCondition) {
		if ifVersion > 0 {
			return fmt.Errorf("patch %s %s: %w", kind, id, ErrConflict)
		}
		return fmt.Errorf("patch %s %s: %w", kind, id, ErrNotFound)
	}
	return err
}

// Cond is a condition on a record's own attributes for PatchWhen.
type Cond struct {
	expr   string
	names  map[string]string
	values map[string]types.AttributeValue
}

// Unset holds when the record has no attribute at path (a json name or a
// dotted path into maps, e.g. "timeline.running").
func Unset(path string) Cond {
	p, names := condPath(path)
	return Cond{expr: "attribute_not_exists(" + p + ")", names: names}
}

// condPath aliases each segment of a dotted path for a condition.
func condPath(path string) (string, map[string]string) {
	parts := strings.Split(path, ".")
	names := map[string]string{}
	for i, p := range parts {
		alias := fmt.Sprintf("#c%d", i)
		names[alias] = p
		parts[i] = alias
	}
	return strings.Join(parts, "."), names
}

// Equals holds when the record's attribute at path (a json name or a
// dotted path into maps) is the string value.
func Equals(path, value string) Cond {
	p, names := condPath(path)
	return Cond{expr: p + " = :c", names: names, values: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: value}}}
}

// PatchWhen is PatchWithRefs that applies only while c holds: a write that
// must not replace another writer's value (a run's backend) uses it.
// ErrConflict when c does not hold, ErrNotFound without the record.
func (s *Store) PatchWhen(ctx context.Context, kind Kind, id string, set map[string]any, c Cond, refs ...Ref) error {
	err := s.patch(ctx, kind, id, set, c, refs)
	if errors.Is(err, errCondition) {
		res, gerr := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: pkOf(kind, id), ProjectionExpression: aws.String(attrPK)})
		if gerr != nil {
			return fmt.Errorf("patch %s %s: %w", kind, id, gerr)
		}
		if res.Item == nil {
			return fmt.Errorf("patch %s %s: %w", kind, id, ErrNotFound)
		}
		return fmt.Errorf("patch %s %s: %w", kind, id, ErrConflict)
	}
	return err
}

var errCondition = errors.New("condition failed")

func (s *Store) patch(ctx context.Context, kind Kind, id string, set map[string]any, c Cond, refs []Ref) error {
	names := map[string]string{"#v": attrVersion}
	values := map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}}
	sets, removes, err := setClauses(set, names, values)
	if err != nil {
		return fmt.Errorf("patch %s %s: %w", kind, id, err)
	}
	cond := "attribute_exists(pk)"
	if c.expr != "" {
		cond += " AND " + c.expr
		for k, v := range c.names {
			names[k] = v
		}
		for k, v := range c.values {
			values[k] = v
		}
	}
	expr := "ADD #v :one"
	if len(sets) > 0 {
		expr = "SET " + strings.Join(sets, ", ") + " " + expr
	}
	if len(removes) > 0 {
		expr += " REMOVE " + strings.Join(removes, ", ")
	}
	update := &types.Update{
		TableName: &s.table, Key: pkOf(kind, id), UpdateExpression: &expr,
		ConditionExpression: &cond, ExpressionAttributeNames: names, ExpressionAttributeValues: values,
	}
	if len(refs) > 0 {
		// The record and its reverse indexes change together or not at all.
		items := []types.TransactWriteItem{{Update: update}}
		for _, r := range refs {
			items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: s.guardItem(guard{kind: r.Kind, id: r.ID}, id, time.Time{})}})
		}
		err = s.transact(ctx, items)
		if cancelled(err) == 0 {
			return errCondition
		}
	} else {
		_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: update.TableName, Key: update.Key, UpdateExpression: update.UpdateExpression,
			ConditionExpression: update.ConditionExpression, ExpressionAttributeNames: names, ExpressionAttributeValues: values,
		})
		if isConditionFailed(err) {
			return errCondition
		}
	}
	if err != nil {
		return fmt.Errorf("patch %s %s: %w", kind, id, err)
	}
	return nil
}

// setClauses renders "SET" clauses for set, whose keys are json attribute
// names or dotted paths into maps ("timeline.running"), and "REMOVE"
// clauses for its nil values; it fills the expression name and value maps.
func setClauses(set map[string]any, names map[string]string, values map[string]types.AttributeValue) (sets, removes []string, err error) {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic expressions
	for i, path := range keys {
		parts := strings.Split(path, ".")
		for j, part := range parts {
			alias := fmt.Sprintf("#f%d_%d", i, j)
			names[alias] = part
			parts[j] = alias
		}
		if set[path] == nil {
			removes = append(removes, strings.Join(parts, "."))
			continue
		}
		av, err := attributevalue.MarshalWithOptions(set[path], encOpts)
		if err != nil {
			return nil, nil, fmt.Errorf("marshal %s: %w", path, err)
		}
		val := fmt.Sprintf(":f%d", i)
		values[val] = av
		sets = append(sets, strings.Join(parts, ".")+" = "+val)
	}
	return sets, removes, nil
}

// Query selects a page of records of one kind, newest first.
type Query struct {
	Kind Kind
	// Status, when set, lists only records in that status.
	Status string
	// ComputeEnvID, when set, lists only records of that compute environment.
	ComputeEnvID string
	// Limit per page (1..MaxPageSize; 0 means 50).
	Limit int
	// Cursor from a previous page ("" for the first).
	Cursor string
}

// Page is one page of a listing: raw items to decode with Unmarshal or Decode.
type Page struct {
	Items      []map[string]types.AttributeValue
	NextCursor string
}

// Decode unmarshals the page's items into out, a pointer to a slice.
func (p Page) Decode(out any) error {
	return attributevalue.UnmarshalListOfMapsWithOptions(p.Items, out, decOpts)
}

// List returns a page of records matching q.
func (s *Store) List(ctx context.Context, q Query) (Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	if limit > MaxPageSize {
		limit = MaxPageSize
	}
	in := &dynamodb.QueryInput{TableName: &s.table, ScanIndexForward: aws.Bool(false), Limit: aws.Int32(int32(limit))}
	switch {
	case q.ComputeEnvID != "":
		in.IndexName = aws.String(IndexByParent)
		in.KeyConditionExpression = aws.String("#p = :p")
		in.ExpressionAttributeNames = map[string]string{"#p": attrParent, "#k": attrKind}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{
			":p": &types.AttributeValueMemberS{Value: Key(KindCE, q.ComputeEnvID)},
			":k": &types.AttributeValueMemberS{Value: string(q.Kind)},
		}
		in.FilterExpression = aws.String("#k = :k")
		if q.Status != "" {
			in.ExpressionAttributeNames["#ks"] = attrKindStatus
			in.ExpressionAttributeValues[":ks"] = &types.AttributeValueMemberS{Value: string(q.Kind) + "#" + q.Status}
			in.FilterExpression = aws.String("#k = :k AND #ks = :ks")
		}
	case q.Status != "":
		in.IndexName = aws.String(IndexByStatus)
		in.KeyConditionExpression = aws.String("#ks = :ks")
		in.ExpressionAttributeNames = map[string]string{"#ks": attrKindStatus}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":ks": &types.AttributeValueMemberS{Value: string(q.Kind) + "#" + q.Status}}
	default:
		in.IndexName = aws.String(IndexByKind)
		in.KeyConditionExpression = aws.String("#k = :k")
		in.ExpressionAttributeNames = map[string]string{"#k": attrKind}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":k": &types.AttributeValueMemberS{Value: string(q.Kind)}}
	}
	if q.Cursor != "" {
		start, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		// A cursor must be a key of this very query: the index's attributes
		// and its partition value. Anything else was forged or belongs to
		// another listing.
		hashAttr, hashValue := attrKind, string(q.Kind)
		switch aws.ToString(in.IndexName) {
		case IndexByParent:
			hashAttr, hashValue = attrParent, Key(KindCE, q.ComputeEnvID)
		case IndexByStatus:
			hashAttr, hashValue = attrKindStatus, string(q.Kind)+"#"+q.Status
		}
		if len(start) != 3 || stringAttr(start, hashAttr) != hashValue || stringAttr(start, attrCreated) == "" ||
			!strings.HasPrefix(stringAttr(start, attrPK), string(q.Kind)+"#") {
			return Page{}, ErrBadCursor
		}
		in.ExclusiveStartKey = start
	}
	var page Page
	// A filtered query can return short or empty pages; keep reading until
	// the page is full or the index is exhausted.
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return Page{}, fmt.Errorf("list %s: %w", q.Kind, err)
		}
		page.Items = append(page.Items, out.Items...)
		if len(out.LastEvaluatedKey) == 0 {
			return page, nil
		}
		if len(page.Items) >= limit {
			page.NextCursor = encodeCursor(out.LastEvaluatedKey)
			return page, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
		in.Limit = aws.Int32(int32(limit - len(page.Items)))
	}
}

// The cursor is the query's LastEvaluatedKey; every key attribute is a string.
func encodeCursor(key map[string]types.AttributeValue) string {
	m := make(map[string]string, len(key))
	for k, v := range key {
		m[k] = stringAttr(key, k)
		_ = v
	}
	b, _ := json.Marshal(m)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(c string) (map[string]types.AttributeValue, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, ErrBadCursor
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || len(m) == 0 || len(m) > 4 {
		return nil, ErrBadCursor
	}
	key := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		switch k {
		case attrPK, attrKind, attrCreated, attrKindStatus, attrParent:
		default:
			return nil, ErrBadCursor
		}
		key[k] = &types.AttributeValueMemberS{Value: v}
	}
	return key, nil
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// All reads every page of q and decodes the records into a slice of T
// (background work such as the reconciler; API listings page instead).
func All[T any](ctx context.Context, s *Store, q Query) ([]T, error) {
	if q.Limit == 0 {
		q.Limit = MaxPageSize
	}
	var out []T
	for {
		page, err := s.List(ctx, q)
		if err != nil {
			return nil, err
		}
		var items []T
		if err := page.Decode(&items); err != nil {
			return nil, fmt.Errorf("decode %s records: %w", q.Kind, err)
		}
		out = append(out, items...)
		if page.NextCursor == "" {
			return out, nil
		}
		q.Cursor = page.NextCursor
	}
}
