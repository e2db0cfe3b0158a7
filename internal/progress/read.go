package progress

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ceforge/ceforge/internal/store"
)

// ErrBadCursor is returned for a task cursor this API did not issue for
// the same listing.
var ErrBadCursor = errors.New("invalid task cursor")

// Read returns a run's snapshot and workflow items in one call; found
// reports whether each exists.
func (s *Store) Read(ctx context.Context, runID string) (snap Snapshot, wf Workflow, haveSnap, haveWf bool, err error) {
	items, err := s.batchGet(ctx, []map[string]types.AttributeValue{pk(snapshotKey(runID)), pk(workflowKey(runID))}, false)
	if err != nil {
		return snap, wf, false, false, fmt.Errorf("read progress of run %s: %w", runID, err)
	}
	if it, ok := items[snapshotKey(runID)]; ok {
		if err := store.Unmarshal(it, &snap); err != nil {
			return snap, wf, false, false, fmt.Errorf("decode progress of run %s: %w", runID, err)
		}
		haveSnap = true
	}
	if it, ok := items[workflowKey(runID)]; ok {
		if err := store.Unmarshal(it, &wf); err != nil {
			return snap, wf, haveSnap, false, fmt.Errorf("decode workflow of run %s: %w", runID, err)
		}
		haveWf = true
	}
	return snap, wf, haveSnap, haveWf, nil
}

// Snapshot reads a run's progress snapshot alone.
func (s *Store) Snapshot(ctx context.Context, runID string) (Snapshot, bool, error) {
	var snap Snapshot
	ok, err := s.get(ctx, snapshotKey(runID), &snap)
	return snap, ok, err
}

// Workflow reads a run's workflow item alone.
func (s *Store) Workflow(ctx context.Context, runID string) (Workflow, bool, error) {
	var wf Workflow
	ok, err := s.get(ctx, workflowKey(runID), &wf)
	return wf, ok, err
}

// Metrics reads a run's per-process metrics (empty until complete).
func (s *Store) Metrics(ctx context.Context, runID string) ([]ProcessMetrics, error) {
	var m struct {
		Metrics []ProcessMetrics `json:"metrics"`
	}
	if _, err := s.get(ctx, metricsKey(runID), &m); err != nil {
		return nil, err
	}
	if m.Metrics == nil {
		m.Metrics = []ProcessMetrics{}
	}
	return m.Metrics, nil
}

// Task reads one task.
func (s *Store) Task(ctx context.Context, runID string, taskID int64) (Task, bool, error) {
	var t Task
	ok, err := s.get(ctx, taskKey(runID, taskID), &t)
	return t, ok, err
}

func (s *Store) get(ctx context.Context, key string, out any) (bool, error) {
	res, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.Table, Key: pk(key)})
	if err != nil {
		return false, fmt.Errorf("get %s: %w", key, err)
	}
	if res.Item == nil {
		return false, nil
	}
	if err := store.Unmarshal(res.Item, out); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

// Task list orders.
const (
	SortStart    = "start"    // oldest start first; tasks not started last
	SortDuration = "duration" // longest first (Nextflow's duration: submit to end); running tasks last
	SortCost     = "cost"     // most expensive first; tasks not priced last
)

// TaskQuery selects a page of a run's tasks.
type TaskQuery struct {
	Status  string
	Process string
	Sort    string
	Limit   int // 1..100, default 50
	Cursor  string
}

// MaxTaskPage is the largest page of tasks.
const MaxTaskPage = 100

// ListTasks reads one page of tasks with exactly one Query. Each filter and
// order has an index (status or process by start; all tasks by start,
// duration or cost) except a status and process together, or a filter
// with the duration or cost order: those filter within the page, so a page
// may hold fewer than Limit tasks (even none) while nextCursor says more
// may follow.
func (s *Store) ListTasks(ctx context.Context, runID string, q TaskQuery) ([]Task, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxTaskPage)
	in := &dynamodb.QueryInput{TableName: &s.Table, Limit: aws.Int32(int32(limit)), ScanIndexForward: aws.Bool(false)}
	names := map[string]string{"#h": ""}
	values := map[string]types.AttributeValue{}
	var hashAttr, hashValue string
	var filters []string
	switch q.Sort {
	case SortDuration, SortCost:
		in.IndexName = aws.String(store.IndexTasksByDuration)
		if q.Sort == SortCost {
			in.IndexName = aws.String(store.IndexTasksByCost)
		}
		hashAttr, hashValue = store.AttrTaskRun, runID
		if q.Status != "" {
			filters = append(filters, "#st = :st")
		}
		if q.Process != "" {
			filters = append(filters, "#pr = :pr")
		}
	default:
		in.ScanIndexForward = aws.Bool(true)
		switch {
		case q.Process != "":
			in.IndexName = aws.String(store.IndexByKind)
			hashAttr, hashValue = store.AttrKind, "TASK#"+runID+"#"+q.Process
			if q.Status != "" {
				filters = append(filters, "#st = :st")
			}
		case q.Status != "":
			in.IndexName = aws.String(store.IndexByStatus)
			hashAttr, hashValue = store.AttrKindStatus, "TASK#"+runID+"#"+q.Status
		default:
			in.IndexName = aws.String(store.IndexByParent)
			hashAttr, hashValue = store.AttrParent, "TASKS#"+runID
		}
	}
	names["#h"] = hashAttr
	values[":h"] = &types.AttributeValueMemberS{Value: hashValue}
	in.KeyConditionExpression = aws.String("#h = :h")
	for _, f := range filters {
		switch f {
		case "#st = :st":
			names["#st"], values[":st"] = "status", &types.AttributeValueMemberS{Value: q.Status}
		case "#pr = :pr":
			names["#pr"], values[":pr"] = "process", &types.AttributeValueMemberS{Value: q.Process}
		}
	}
	if len(filters) > 0 {
		expr := filters[0]
		for _, f := range filters[1:] {
			expr += " AND " + f
		}
		in.FilterExpression = aws.String(expr)
	}
	in.ExpressionAttributeNames, in.ExpressionAttributeValues = names, values
	if q.Cursor != "" {
		start, err := decodeCursor(q.Cursor, aws.ToString(in.IndexName), hashAttr, hashValue)
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	out, err := s.DB.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list tasks of run %s: %w", runID, err)
	}
	tasks := make([]Task, 0, len(out.Items))
	if err := (store.Page{Items: out.Items}).Decode(&tasks); err != nil {
		return nil, "", fmt.Errorf("decode tasks of run %s: %w", runID, err)
	}
	next := ""
	if len(out.LastEvaluatedKey) > 0 {
		next = encodeCursor(aws.ToString(in.IndexName), out.LastEvaluatedKey)
	}
	return tasks, next, nil
}

// A cursor is the index name and the query's LastEvaluatedKey (string
// attributes only); it is accepted only for the same index and partition.
type cursor struct {
	Index string            `json:"i"`
	Key   map[string]string `json:"k"`
}

func encodeCursor(index string, key map[string]types.AttributeValue) string {
	c := cursor{Index: index, Key: map[string]string{}}
	for k, v := range key {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			c.Key[k] = s.Value
		}
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, index, hashAttr, hashValue string) (map[string]types.AttributeValue, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 4096 {
		return nil, ErrBadCursor
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.Index != index || c.Key[hashAttr] != hashValue || len(c.Key) > 4 {
		return nil, ErrBadCursor
	}
	key := map[string]types.AttributeValue{}
	for k, v := range c.Key {
		key[k] = &types.AttributeValueMemberS{Value: v}
	}
	if _, ok := key["pk"]; !ok || len(key) < 3 {
		return nil, ErrBadCursor
	}
	return key, nil
}
