package progress

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ceforge/ceforge/internal/price"
	"github.com/ceforge/ceforge/internal/store"
)

// DynamoAPI is the part of the DynamoDB client this package calls.
type DynamoAPI interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Store reads and writes a run's progress items.
type Store struct {
	DB    DynamoAPI
	Table string
	// Prices costs tasks (price.Default when nil).
	Prices *price.Table
	// Workers bounds the concurrent task writes of one call (default 16).
	Workers int
	Now     func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Store) prices() *price.Table {
	if s.Prices != nil {
		return s.Prices
	}
	return price.Default
}

// Keys of the items.
func snapshotKey(runID string) string { return ProgressPrefix + runID }
func workflowKey(runID string) string { return ProgressPrefix + runID + "#workflow" }
func metricsKey(runID string) string  { return ProgressPrefix + runID + "#metrics" }
func taskKey(runID string, taskID int64) string {
	return TaskPrefix + runID + "#" + strconv.FormatInt(taskID, 10)
}

func pk(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: key}}
}

// RunFacts is what the trace receiver needs from a run's record: the token
// hash, the status and end (for the token's validity window), and what
// prices its tasks. Field names follow the run record (internal/run).
type RunFacts struct {
	ID           string   `json:"id"`
	Status       string   `json:"status"`
	Platform     string   `json:"platform"`
	ComputeEnvID string   `json:"computeEnvId"`
	MaxCostUSD   *float64 `json:"maxCostUsd,omitempty"`
	Trace        struct {
		Enabled   bool   `json:"enabled"`
		TokenHash string `json:"tokenHash"`
	} `json:"trace"`
	Timeline struct {
		Completed *time.Time `json:"completed,omitempty"`
	} `json:"timeline"`
	Backend struct {
		Region       string `json:"region,omitempty"`
		InstanceType string `json:"instanceType,omitempty"`
		Spot         bool   `json:"spot,omitempty"`
	} `json:"backend"`
}

// Load reads a run's facts and its progress snapshot in one call. found is
// false when the run does not exist.
func (s *Store) Load(ctx context.Context, runID string) (facts RunFacts, snap Snapshot, found bool, err error) {
	keys := []map[string]types.AttributeValue{pk(store.Key(store.KindRun, runID)), pk(snapshotKey(runID))}
	items, err := s.batchGet(ctx, keys, true)
	if err != nil {
		return facts, snap, false, fmt.Errorf("load run %s: %w", runID, err)
	}
	if it, ok := items[store.Key(store.KindRun, runID)]; ok {
		if err := store.Unmarshal(it, &facts); err != nil {
			return facts, snap, false, fmt.Errorf("decode run %s: %w", runID, err)
		}
		found = true
	}
	if it, ok := items[snapshotKey(runID)]; ok {
		if err := store.Unmarshal(it, &snap); err != nil {
			return facts, snap, found, fmt.Errorf("decode progress of run %s: %w", runID, err)
		}
	}
	return facts, snap, found, nil
}

// batchGet reads up to 100 items by key, retrying unprocessed keys.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, consistent bool) (map[string]map[string]types.AttributeValue, error) {
	out := map[string]map[string]types.AttributeValue{}
	req := map[string]types.KeysAndAttributes{s.Table: {Keys: keys, ConsistentRead: aws.Bool(consistent)}}
	for attempt := 0; len(req) > 0; attempt++ {
		if attempt > 0 {
			if attempt > 5 {
				return nil, errors.New("batch get: keys still unprocessed after 5 retries")
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 20 * time.Millisecond):
			}
		}
		res, err := s.DB.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, err
		}
		for _, it := range res.Responses[s.Table] {
			if k, ok := it["pk"].(*types.AttributeValueMemberS); ok {
				out[k.Value] = it
			}
		}
		req = res.UnprocessedKeys
	}
	return out, nil
}

// TaskWrite is the outcome of recording one call's tasks.
type TaskWrite struct {
	Applied   int     // tasks that moved forward
	Stale     int     // duplicates and late records: nothing changed
	CostDelta float64 // cost of the tasks that ended in this call
	Priced    int64
	Unpriced  int64
}

// Pricing says how to price a run's tasks that carry no machine type or
// zone (the AWS Cloud head runs them itself).
type Pricing struct {
	Region       string
	InstanceType string
	Spot         bool
}

// UpsertTasks writes each task with one conditional PutItem: it applies
// only when the task is new or its status moves forward, so a duplicate,
// reordered or late record changes nothing. DynamoDB's batch writes take
// no conditions, hence one call per task, issued concurrently: one write
// per task change. A task that ends is priced in the same write.
func (s *Store) UpsertTasks(ctx context.Context, runID string, tasks []Task, p Pricing) (TaskWrite, error) {
	var w TaskWrite
	if len(tasks) == 0 {
		return w, nil
	}
	workers := s.Workers
	if workers <= 0 {
		workers = 16
	}
	now := s.now()
	var mu sync.Mutex
	var errs []error
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(tasks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := tasks[i]
				t.RunID, t.UpdatedAt = runID, now
				priced := s.price(&t, p)
				applied, err := s.upsertTask(ctx, &t)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case !applied:
					w.Stale++
				default:
					w.Applied++
					if TaskTerminal(t.Status) && t.Status != TaskCached {
						if priced {
							w.Priced++
							w.CostDelta += *t.CostUSD
						} else {
							w.Unpriced++
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	for i := range tasks {
		next <- i
	}
	close(next)
	wg.Wait()
	return w, errors.Join(errs...)
}

// price sets a terminal task's cost; false when it cannot be priced.
func (s *Store) price(t *Task, p Pricing) bool {
	if !TaskTerminal(t.Status) || t.Status == TaskCached || t.RealtimeMs == nil {
		return false
	}
	machine, region, spot := t.MachineType, price.RegionOfZone(t.CloudZone), strings.EqualFold(t.PriceModel, "spot")
	if machine == "" {
		machine, spot = p.InstanceType, p.Spot
	}
	if region == "" {
		region = p.Region
	}
	u := price.Usage{Realtime: time.Duration(*t.RealtimeMs) * time.Millisecond}
	if t.Cpus != nil {
		u.Cpus = *t.Cpus
	}
	if t.MemoryBytes != nil {
		u.MemoryBytes = *t.MemoryBytes
	}
	c, ok := s.prices().TaskCost(region, machine, spot, u)
	if !ok {
		return false
	}
	t.CostUSD = &c
	return true
}

// sortStart orders tasks by start (then submit), not-started last.
func sortStart(t *Task) string {
	at := t.Start
	if at == nil {
		at = t.Submit
	}
	id := fmt.Sprintf("%012d", t.TaskID)
	if at == nil {
		return "~#" + id
	}
	return at.UTC().Format("2006-01-02T15:04:05.000Z") + "#" + id
}

func padded(v float64, digits int) string {
	if v < 0 {
		v = 0
	}
	return fmt.Sprintf("%0*d", digits, int64(v))
}

// Index keys of a task: byParent (all, by start), byStatus (status, by
// start), byKind (process, by start), and the duration and cost indexes.
func taskIndexes(t *Task) map[string]string {
	var dur, cost float64
	if t.DurationMs != nil {
		dur = float64(*t.DurationMs)
	}
	if t.CostUSD != nil {
		cost = *t.CostUSD * 1e9 // nano-USD
	}
	return map[string]string{
		store.AttrParent:       "TASKS#" + t.RunID,
		store.AttrKindStatus:   "TASK#" + t.RunID + "#" + t.Status,
		store.AttrKind:         "TASK#" + t.RunID + "#" + t.Process,
		store.AttrCreated:      sortStart(t),
		store.AttrTaskRun:      t.RunID,
		store.AttrTaskDuration: padded(dur, 13),
		store.AttrTaskCost:     padded(cost, 18),
	}
}

// upsertTask writes a task's latest record whole (Nextflow sends every
// field of a task in each record) with one conditional PutItem: only when
// the task is new or its status moves forward.
func (s *Store) upsertTask(ctx context.Context, t *Task) (bool, error) {
	item, err := store.Marshal(t)
	if err != nil {
		return false, fmt.Errorf("encode task %d: %w", t.TaskID, err)
	}
	for k, v := range taskIndexes(t) {
		item[k] = &types.AttributeValueMemberS{Value: v}
	}
	item["pk"] = &types.AttributeValueMemberS{Value: taskKey(t.RunID, t.TaskID)}
	item["statusRank"] = &types.AttributeValueMemberN{Value: strconv.Itoa(TaskRank(t.Status))}
	_, err = s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 &s.Table,
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR #rank < :rank"),
		ExpressionAttributeNames:  map[string]string{"#rank": "statusRank"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":rank": item["statusRank"]},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("write task %d of run %s: %w", t.TaskID, t.RunID, err)
	}
	return true, nil
}

// SnapshotUpdate is what one trace call changes in the PROGRESS item.
type SnapshotUpdate struct {
	// Instant is the body's time on Nextflow's clock (epoch ms). Counts
	// apply only when no newer body was applied: a late or reordered call
	// never takes the counters back.
	Instant   int64
	Counts    *Counts
	Processes []ProcessProgress
	Tasks     TaskWrite
}

// RecordProgress applies one call's counters and cost in one write. When a
// newer body was applied already, only the cost of the tasks this call
// ended (and the time of the call) is added.
func (s *Store) RecordProgress(ctx context.Context, runID string, u SnapshotUpdate) error {
	now := s.now()
	names := map[string]string{"#run": "runId", "#last": "lastTraceAt", "#cost": "tasksCostUsd", "#priced": "pricedTasks", "#unpriced": "unpricedTasks"}
	values := map[string]types.AttributeValue{
		":run": &types.AttributeValueMemberS{Value: runID}, ":now": &types.AttributeValueMemberS{Value: now.Format(time.RFC3339Nano)},
		":cost":     &types.AttributeValueMemberN{Value: strconv.FormatFloat(u.Tasks.CostDelta, 'g', -1, 64)},
		":priced":   &types.AttributeValueMemberN{Value: strconv.FormatInt(u.Tasks.Priced, 10)},
		":unpriced": &types.AttributeValueMemberN{Value: strconv.FormatInt(u.Tasks.Unpriced, 10)},
	}
	base := "SET #run = :run, #last = :now"
	add := " ADD #cost :cost, #priced :priced, #unpriced :unpriced"
	if u.Counts != nil {
		counts, err := store.Marshal(struct {
			Counts    Counts            `json:"counts"`
			Processes []ProcessProgress `json:"processes"`
		}{*u.Counts, u.Processes})
		if err != nil {
			return fmt.Errorf("encode progress of run %s: %w", runID, err)
		}
		if u.Processes == nil {
			counts["processes"] = &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
		}
		n2 := cloneNames(names)
		v2 := cloneValues(values)
		n2["#counts"], n2["#procs"], n2["#inst"] = "counts", "processes", "lastInstant"
		v2[":counts"], v2[":procs"] = counts["counts"], counts["processes"]
		v2[":inst"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(u.Instant, 10)}
		_, err = s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.Table, Key: pk(snapshotKey(runID)),
			UpdateExpression:          aws.String(base + ", #counts = :counts, #procs = :procs, #inst = :inst" + add),
			ConditionExpression:       aws.String("attribute_not_exists(#inst) OR #inst <= :inst"),
			ExpressionAttributeNames:  n2,
			ExpressionAttributeValues: v2,
		})
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			if err != nil {
				return fmt.Errorf("record progress of run %s: %w", runID, err)
			}
			return nil
		}
	}
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.Table, Key: pk(snapshotKey(runID)),
		UpdateExpression: aws.String(base + add), ExpressionAttributeNames: names, ExpressionAttributeValues: values,
	})
	if err != nil {
		return fmt.Errorf("record progress of run %s: %w", runID, err)
	}
	return nil
}

// PhaseUpdate moves a run's phase forward (create, begin, complete).
type PhaseUpdate struct {
	Phase        string
	At           time.Time // when Nextflow sent it
	SessionID    string
	Success      *bool
	ErrorMessage string
	ExitStatus   *int
}

// RecordPhase moves the phase forward in one conditional write; a replayed
// or late create/begin after a later phase changes nothing (false).
func (s *Store) RecordPhase(ctx context.Context, runID string, u PhaseUpdate) (bool, error) {
	now := s.now()
	set := map[string]any{"runId": runID, "phase": u.Phase, "phaseRank": PhaseRank(u.Phase), "lastTraceAt": now}
	switch u.Phase {
	case PhaseCreated:
		set["createdAt"] = u.At
	case PhaseRunning:
		set["beganAt"] = u.At
	case PhaseCompleted:
		set["completedAt"] = u.At
		if u.Success != nil {
			set["success"] = *u.Success
		}
		if u.ErrorMessage != "" {
			set["errorMessage"] = u.ErrorMessage
		}
		if u.ExitStatus != nil {
			set["exitStatus"] = *u.ExitStatus
		}
	}
	if u.SessionID != "" {
		set["sessionId"] = u.SessionID
	}
	names := map[string]string{"#pr": "phaseRank"}
	values := map[string]types.AttributeValue{}
	var sets []string
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		av, err := store.Marshal(map[string]any{"v": set[k]})
		if err != nil {
			return false, fmt.Errorf("encode %s: %w", k, err)
		}
		n, v := "#p"+strconv.Itoa(i), ":p"+strconv.Itoa(i)
		if k == "phaseRank" {
			n, v = "#pr", ":pr"
		}
		names[n], values[v] = k, av["v"]
		sets = append(sets, n+" = "+v)
	}
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.Table, Key: pk(snapshotKey(runID)),
		UpdateExpression:          aws.String("SET " + strings.Join(sets, ", ")),
		ConditionExpression:       aws.String("attribute_not_exists(#pr) OR #pr < :pr"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record %s of run %s: %w", u.Phase, runID, err)
	}
	return true, nil
}

// Limits on what one run's metadata items hold (DynamoDB items are at most
// 400 KB; the rest is cut with a marker).
const (
	MaxTextBytes       = 64 << 10
	MaxMetricProcesses = 500
)

// Truncate cuts s to at most n bytes (on a rune boundary), marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "\n…[truncated by ceforge]"
	cut := n - len(mark)
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + mark
}

// PutWorkflow stores the workflow object of begin or complete (complete's
// is the fuller one and replaces begin's; a begin arriving after complete
// is ignored).
func (s *Store) PutWorkflow(ctx context.Context, runID string, w Workflow, fromComplete bool) error {
	w.ParamsJSON = Truncate(w.ParamsJSON, MaxTextBytes)
	w.ConfigText = Truncate(w.ConfigText, MaxTextBytes)
	w.ErrorReport = Truncate(w.ErrorReport, MaxTextBytes)
	w.CommandLine = Truncate(w.CommandLine, 8<<10)
	item, err := store.Marshal(w)
	if err != nil {
		return fmt.Errorf("encode workflow of run %s: %w", runID, err)
	}
	item["pk"] = &types.AttributeValueMemberS{Value: workflowKey(runID)}
	item["fromComplete"] = &types.AttributeValueMemberBOOL{Value: fromComplete}
	in := &dynamodb.PutItemInput{TableName: &s.Table, Item: item}
	if !fromComplete {
		in.ConditionExpression = aws.String("attribute_not_exists(fromComplete) OR fromComplete = :f")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":f": &types.AttributeValueMemberBOOL{Value: false}}
	}
	_, err = s.DB.PutItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store workflow of run %s: %w", runID, err)
	}
	return nil
}

// PutMetrics stores the per-process metrics of complete.
func (s *Store) PutMetrics(ctx context.Context, runID string, m []ProcessMetrics) error {
	if len(m) > MaxMetricProcesses {
		m = m[:MaxMetricProcesses]
	}
	item, err := store.Marshal(struct {
		Metrics []ProcessMetrics `json:"metrics"`
	}{m})
	if err != nil {
		return fmt.Errorf("encode metrics of run %s: %w", runID, err)
	}
	item["pk"] = &types.AttributeValueMemberS{Value: metricsKey(runID)}
	if _, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.Table, Item: item}); err != nil {
		return fmt.Errorf("store metrics of run %s: %w", runID, err)
	}
	return nil
}

func cloneNames(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+4)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneValues(m map[string]types.AttributeValue) map[string]types.AttributeValue {
	out := make(map[string]types.AttributeValue, len(m)+4)
	for k, v := range m {
		out[k] = v
	}
	return out
}
