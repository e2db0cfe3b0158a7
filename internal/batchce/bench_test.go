package batchce_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
)

func storeWrites(c *awsclient.CallCounter) int {
	return c.Count("DynamoDB.PutItem") + c.Count("DynamoDB.UpdateItem") + c.Count("DynamoDB.TransactWriteItems") + c.Count("DynamoDB.DeleteItem")
}

func awsCalls(c *awsclient.CallCounter) int { return c.Total("") - c.Total("DynamoDB") }

// BenchmarkScenarioBatchEventsStoreWrites feeds batches of 100 compute-job
// events (5 runs, shuffled states, duplicates) through the real processor
// and store on the emulator, and reports DynamoDB writes per batch: one per
// run touched, whatever the number of events.
func BenchmarkScenarioBatchEventsStoreWrites(b *testing.B) {
	h := newHarness(b)
	ce := createCE(b, h, forgeBody("bench"))
	const runs, batch = 5, 100
	ids := make([]string, runs)
	for i := range ids {
		ids[i] = launch(b, h, ce.ID).ID
	}
	states := []string{"batch-compute-running", "batch-compute-submitted", "batch-compute-succeeded", "batch-compute-runnable", "batch-compute-running", "batch-compute-failed"}
	ctx := context.Background()
	b.ResetTimer()
	writes, batches := 0, 0
	for i := 0; i < b.N; i++ {
		evs := make([]map[string]any, batch)
		for j := range evs {
			evs[j] = sample(b, states[j%len(states)], ids[j%runs], fmt.Sprintf("job-%d-%d", i, j/len(states)), false, prefix)
		}
		msgs := messages(b, evs...)
		h.Calls.Reset()
		failed, _ := h.BatchEvents.BatchEvents.Process(ctx, msgs)
		if len(failed) > 0 {
			b.Fatal("failed", failed)
		}
		writes += storeWrites(h.Calls)
		batches++
	}
	b.ReportMetric(float64(writes)/float64(batches), "store_writes/batch")
	b.ReportMetric(runs, "runs/batch")
	b.ReportMetric(batch, "events/batch")
}

// BenchmarkScenarioForgeCalls creates a Spot forge CE (to AVAILABLE) and
// deletes it with dispose (to DELETED), and reports the AWS calls of each
// (DynamoDB excluded).
func BenchmarkScenarioForgeCalls(b *testing.B) {
	create, del, passes := 0, 0, 0
	for i := 0; i < b.N; i++ {
		h := newHarness(b)
		h.Calls.Reset()
		ce := createCE(b, h, forgeBody(fmt.Sprintf("calls%d", i)))
		if ce.Status != computeenv.StatusAvailable {
			b.Fatal(ce.StatusReason)
		}
		create += awsCalls(h.Calls)
		h.Calls.Reset()
		if res := h.Do(b, "DELETE", "/compute-envs/"+ce.ID, nil); res.Status != 202 {
			b.Fatal(string(res.Body))
		}
		if ce = settle(b, h, ce.ID); ce.Status != computeenv.StatusDeleted {
			b.Fatal(ce.Status)
		}
		del += awsCalls(h.Calls)
		passes++
	}
	b.ReportMetric(float64(create)/float64(passes), "aws_calls/create")
	b.ReportMetric(float64(del)/float64(passes), "aws_calls/delete")
}
