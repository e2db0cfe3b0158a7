package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/ceforge/ceforge/internal/api"
)

// BenchmarkScenarioCreateCE sends 200 create-CE requests over HTTP to the
// API served locally against the emulator, and reports p50/p99. The
// stand-in provisioner makes no AWS call, so this is the control plane's own
// cost: HTTP, validation, the conditional DynamoDB transaction and the save.
func BenchmarkScenarioCreateCE(b *testing.B) {
	h, _ := newHarness(b)
	srv := httptest.NewServer(api.LocalIdentity(h.Router, "local:bench"))
	defer srv.Close()
	const n = 200
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := 0; i < n; i++ {
		body, _ := json.Marshal(validCE(fmt.Sprintf("bench-%d-%d", b.N, i)))
		start := time.Now()
		res, err := http.Post(srv.URL+"/compute-envs", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		lat = append(lat, time.Since(start))
		if res.StatusCode != 201 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99_ms")
	b.ReportMetric(0, "ns/op")
}
