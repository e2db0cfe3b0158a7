package reliability_test

import (
	"testing"
	"time"
)

// BenchmarkScenarioEventChaos is TestEventChaos at 500 runs (250 AWS
// Cloud, 250 Batch split between a forged and a manual-mode CE, a tenth
// with tagless head events). Run with -benchtime=1x.
func BenchmarkScenarioEventChaos(b *testing.B) {
	for i := 0; i < b.N; i++ {
		f, _ := proxied(b, 3)
		start := time.Now()
		res := runEventChaos(b, f, chaosOpts{cloudRuns: 250, batchRuns: 250, dropRate: 0.05, seed: uint64(500 + i), workers: 4})
		elapsed := time.Since(start)
		for _, w := range append(res.wrong, res.lost...) {
			b.Log(w)
		}
		b.ReportMetric(float64(res.runs), "runs")
		b.ReportMetric(float64(res.manual), "runs_manual_ce")
		b.ReportMetric(float64(res.tagless), "runs_tagless_head_events")
		b.ReportMetric(float64(res.events), "events")
		b.ReportMetric(float64(res.dropped), "events_dropped")
		b.ReportMetric(float64(len(res.wrong)), "runs_wrong")
		b.ReportMetric(float64(len(res.lost)), "runs_lost")
		b.ReportMetric(elapsed.Seconds(), "elapsed_s")
		b.ReportMetric(res.deliver.Seconds(), "delivery_s")
		b.ReportMetric(res.reconcile.Seconds(), "reconcile_s")
	}
}

// BenchmarkScenarioLoad is TestLoad for 60 s. Run with -benchtime=1x.
func BenchmarkScenarioLoad(b *testing.B) {
	for i := 0; i < b.N; i++ {
		f, _ := proxied(b, 3)
		res := runLoad(b, f, 200, 60*time.Second)
		for _, w := range append(append(res.lost, res.duplicated...), res.instanceProblems...) {
			b.Log(w)
		}
		b.ReportMetric(float64(res.p50.Milliseconds()), "p50_ms")
		b.ReportMetric(float64(res.p99.Milliseconds()), "p99_ms")
		b.ReportMetric(float64(res.status5xx), "status_5xx")
		b.ReportMetric(float64(res.transport), "transport_errors")
		b.ReportMetric(float64(len(res.lost)), "runs_lost")
		b.ReportMetric(float64(len(res.duplicated)), "runs_duplicated")
		b.ReportMetric(float64(len(res.instanceProblems)), "instance_mismatches")
		b.ReportMetric(float64(res.requests), "requests")
		b.ReportMetric(float64(res.launches), "launches")
		b.ReportMetric(float64(res.requests)/res.elapsed.Seconds(), "requests/s")
	}
}
