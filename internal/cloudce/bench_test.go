package cloudce_test

import (
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/ceforge/ceforge/internal/run"
)

// BenchmarkScenarioCloudLaunch measures one launch through the API against
// the emulator: AWS calls per launch (target: 1 EC2 call, at most 3 DynamoDB
// calls) and the p50 latency over launchSamples launches. Run it with
// -benchtime=1x; b.N only repeats the scenario.
func BenchmarkScenarioCloudLaunch(b *testing.B) {
	const launchSamples = 50
	f := newFixture(b)
	ce := f.createCE(b, ceBody())
	body := pipelineBody(ce.ID)
	f.launch(b, body) // warm clients and connections

	f.Calls.Reset()
	res := f.Do(b, http.MethodPost, "/runs", body)
	if res.Status != http.StatusCreated {
		b.Fatalf("launch: %d %s", res.Status, res.Body)
	}
	ec2Calls, ddbCalls := f.Calls.Total("EC2"), f.Calls.Total("DynamoDB")
	if other := f.Calls.Total("") - ec2Calls - ddbCalls; other != 0 {
		b.Errorf("unexpected AWS calls on the launch path: %v", f.Calls.Snapshot())
	}

	b.ResetTimer()
	var samples []time.Duration
	for range b.N {
		samples = samples[:0]
		for range launchSamples {
			start := time.Now()
			r := f.launch(b, body)
			samples = append(samples, time.Since(start))
			if r.Status != run.StatusSubmitted {
				b.Fatalf("launch ended %s: %s", r.Status, r.StatusReason)
			}
		}
	}
	b.StopTimer()
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(float64(ec2Calls), "ec2_calls/launch")
	b.ReportMetric(float64(ddbCalls), "ddb_calls/launch")
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "launch_p50_ms")
	b.ReportMetric(float64(samples[len(samples)*95/100].Microseconds())/1000, "launch_p95_ms")
}
