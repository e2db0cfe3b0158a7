package reliability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/tags"
)

type loadResult struct {
	requests, launches, reads, cancels int
	status5xx, transport               int
	statuses                           map[int]int
	p50, p99                           time.Duration
	lost, duplicated, instanceProblems []string
	elapsed                            time.Duration
}

// runLoad drives the local API over HTTP with clients concurrent clients
// mixing launches (cloud), reads and cancels for d, then checks that the
// runs the clients were given, the runs the API lists and the instances
// EC2 holds are the same set, one each.
func runLoad(tb testing.TB, f *fixture, clients int, d time.Duration) loadResult {
	tb.Helper()
	ce := f.createCE(tb, cloudCEBody("load"))
	srv := httptest.NewServer(api.LocalIdentity(f.API.Handler(), apptest.Caller))
	defer srv.Close()
	// The timeout only ends a hung request: latency is the benchmark's
	// (BenchmarkScenarioLoad), and on a machine shared with other test
	// binaries a burst of 200 launches queues for minutes in the emulator.
	hc := &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}}

	var mu sync.Mutex
	res := loadResult{statuses: map[int]int{}}
	var lat []time.Duration
	given := map[string]int{} // run id -> times a launch answered it
	do := func(method, path string, body any) (int, []byte) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, srv.URL+path, rd)
		if rd != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		start := time.Now()
		resp, err := hc.Do(req)
		took := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		res.requests++
		if err != nil {
			res.transport++
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		lat = append(lat, took)
		res.statuses[resp.StatusCode]++
		if resp.StatusCode >= 500 {
			res.status5xx++
		}
		return resp.StatusCode, b
	}

	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			var mine []string
			for time.Now().Before(deadline) {
				p := rng.IntN(100)
				if len(mine) == 0 && p >= 35 {
					p = 80 // nothing of its own yet: list instead
				}
				switch {
				case p < 35:
					status, b := do(http.MethodPost, "/runs", pipelineReq(ce.ID))
					mu.Lock()
					res.launches++
					mu.Unlock()
					if status == http.StatusCreated {
						var r run.Run
						if json.Unmarshal(b, &r) == nil && r.ID != "" {
							mine = append(mine, r.ID)
							mu.Lock()
							given[r.ID]++
							mu.Unlock()
						}
					}
				case p < 85:
					path := "/runs?limit=20&computeEnvId=" + ce.ID
					if p < 75 {
						path = "/runs/" + mine[rng.IntN(len(mine))]
					}
					do(http.MethodGet, path, nil)
					mu.Lock()
					res.reads++
					mu.Unlock()
				default:
					do(http.MethodPost, "/runs/"+mine[rng.IntN(len(mine))]+"/cancel", nil)
					mu.Lock()
					res.cancels++
					mu.Unlock()
				}
			}
		}(c)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		res.p50, res.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	}

	// The API's list, the clients' answers and EC2 must agree.
	listed := map[string]int{}
	cursor := ""
	for {
		q := url.Values{"computeEnvId": {ce.ID}, "limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		status, b := do(http.MethodGet, "/runs?"+q.Encode(), nil)
		require.Equal(tb, http.StatusOK, status, string(b))
		var page struct {
			Items      []run.Run `json:"items"`
			NextCursor string    `json:"nextCursor"`
		}
		require.NoError(tb, json.Unmarshal(b, &page))
		for _, r := range page.Items {
			listed[r.ID]++
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	instances := map[string]int{}
	pages := ec2.NewDescribeInstancesPaginator(f.EC2, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:" + tags.CEID), Values: []string{ce.ID}}}})
	for pages.HasMorePages() {
		out, err := pages.NextPage(context.Background())
		require.NoError(tb, err)
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				for _, t := range i.Tags {
					if aws.ToString(t.Key) == tags.RunID {
						instances[aws.ToString(t.Value)]++
					}
				}
			}
		}
	}
	for id, n := range given {
		if n != 1 || listed[id] != 1 {
			res.lost = append(res.lost, fmt.Sprintf("run %s answered %d times, listed %d times", id, n, listed[id]))
		}
		if instances[id] != 1 {
			res.instanceProblems = append(res.instanceProblems, fmt.Sprintf("run %s has %d instances", id, instances[id]))
		}
	}
	for id, n := range listed {
		if given[id] == 0 || n != 1 {
			res.duplicated = append(res.duplicated, fmt.Sprintf("run %s listed %d times, answered to %d clients", id, n, given[id]))
		}
	}
	for id := range instances {
		if given[id] == 0 {
			res.instanceProblems = append(res.instanceProblems, fmt.Sprintf("instance of unknown run %s", id))
		}
	}
	return res
}

// TestLoad: 200 concurrent clients for 10 s against the API over HTTP:
// no 5xx, no transport error, every run answered once, listed once, with
// one instance.
func TestLoad(t *testing.T) {
	f, _ := proxied(t, 3)
	res := runLoad(t, f, 200, 10*time.Second)
	t.Logf("%d requests (%d launches, %d reads, %d cancels) in %s; p50 %s, p99 %s; statuses %v",
		res.requests, res.launches, res.reads, res.cancels, res.elapsed, res.p50, res.p99, res.statuses)
	require.Zero(t, res.status5xx, "5xx answers: %v", res.statuses)
	require.Zero(t, res.transport, "transport errors")
	require.Empty(t, res.lost, "lost runs")
	require.Empty(t, res.duplicated, "duplicated runs")
	require.Empty(t, res.instanceProblems, "instances")
	require.Positive(t, res.launches)
}
