package stack_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ceforge/ceforge/internal/metrics"
)

// metricQuery is one metric the dashboard or an alarm reads from the
// functions' Embedded Metric Format logs: namespace, name and the exact
// dimension set (a CloudWatch SEARCH schema, or a metric's dimensions, only
// matches metrics published with exactly those dimensions).
type metricQuery struct {
	Namespace  string   `json:"namespace"`
	Metric     string   `json:"metric"`
	Dimensions []string `json:"dimensions"`
	Used       []string `json:"usedBy"`
}

// metricQueriesFile holds the queries of the synthesized template for the
// tests that compare them with what the functions really print
// (TestFunctionsEmitWhatTheDashboardReads in internal/app), which cannot
// synthesize the stack themselves.
var metricQueriesFile = filepath.Join("..", "..", "internal", "metrics", "testdata", "queries.json")

var searchRE = regexp.MustCompile(`SEARCH\('\{([^}]*)\} MetricName="([^"]+)"`)

// metricQueries extracts every ceforge-namespace metric query of the
// template: dashboard widgets (SEARCH expressions and plain metrics) and
// alarms.
func metricQueries(t *testing.T, s *synthesis) []metricQuery {
	t.Helper()
	found := map[string]*metricQuery{}
	add := func(ns, metric string, dims []string, where string) {
		if ns != metrics.Namespace {
			return // AWS's own metrics (Lambda, SQS, API Gateway) are not the functions' EMF
		}
		sort.Strings(dims)
		if dims == nil {
			dims = []string{}
		}
		key := ns + "/" + metric + "/" + strings.Join(dims, ",")
		q, ok := found[key]
		if !ok {
			q = &metricQuery{Namespace: ns, Metric: metric, Dimensions: dims}
			found[key] = q
		}
		for _, u := range q.Used {
			if u == where {
				return
			}
		}
		q.Used = append(q.Used, where)
	}
	for _, d := range s.resources("AWS::CloudWatch::Dashboard") {
		var body struct {
			Widgets []struct {
				Properties struct {
					Title   string  `json:"title"`
					Metrics [][]any `json:"metrics"`
				} `json:"properties"`
			} `json:"widgets"`
		}
		if err := json.Unmarshal([]byte(flat(props(d)["DashboardBody"])), &body); err != nil {
			t.Fatalf("dashboard body: %v", err)
		}
		for _, w := range body.Widgets {
			where := "dashboard: " + w.Properties.Title
			for _, m := range w.Properties.Metrics {
				if len(m) == 1 {
					expr, _ := m[0].(map[string]any)["expression"].(string)
					sm := searchRE.FindStringSubmatch(expr)
					if sm == nil {
						t.Errorf("%s: expression %q is not a SEARCH this test understands", where, expr)
						continue
					}
					schema := strings.Split(sm[1], ",")
					add(schema[0], sm[2], schema[1:], where)
					continue
				}
				// [namespace, name, dim1, value1, ..., {options}]
				var parts []string
				for _, v := range m {
					if s, ok := v.(string); ok {
						parts = append(parts, s)
					}
				}
				if len(parts) < 2 {
					t.Errorf("%s: metric %v has no namespace and name", where, m)
					continue
				}
				var dims []string
				for i := 2; i+1 < len(parts); i += 2 {
					dims = append(dims, parts[i])
				}
				add(parts[0], parts[1], dims, where)
			}
		}
	}
	for id, a := range s.resources("AWS::CloudWatch::Alarm") {
		p := props(a)
		name, _ := p["AlarmName"].(string)
		if name == "" {
			name = id
		}
		where := "alarm: " + name
		if ns, ok := p["Namespace"].(string); ok {
			var dims []string
			for _, d := range asList(p["Dimensions"]) {
				dims = append(dims, fmt.Sprint(d.(map[string]any)["Name"]))
			}
			add(ns, fmt.Sprint(p["MetricName"]), dims, where)
		}
		for _, m := range asList(p["Metrics"]) {
			stat, _ := m.(map[string]any)["MetricStat"].(map[string]any)
			met, _ := stat["Metric"].(map[string]any)
			if met == nil {
				continue
			}
			var dims []string
			for _, d := range asList(met["Dimensions"]) {
				dims = append(dims, fmt.Sprint(d.(map[string]any)["Name"]))
			}
			add(fmt.Sprint(met["Namespace"]), fmt.Sprint(met["MetricName"]), dims, where)
		}
	}
	out := make([]metricQuery, 0, len(found))
	for _, q := range found {
		sort.Strings(q.Used)
		out = append(out, *q)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Metric+"/"+strings.Join(a.Dimensions, ",") < b.Metric+"/"+strings.Join(b.Dimensions, ",")
	})
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestMetricQueriesGolden: internal/metrics/testdata/queries.json is the
// template's metric queries, so the functions' EMF output can be compared
// with them (CEFORGE_UPDATE_GOLDEN=1 rewrites it after a dashboard or
// alarm change).
func TestMetricQueriesGolden(t *testing.T) {
	got := metricQueries(t, synthDefault(t))
	if len(got) == 0 {
		t.Fatal("no ceforge metric query found in the template")
	}
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if os.Getenv("CEFORGE_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(metricQueriesFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(metricQueriesFile)
	if err != nil {
		t.Fatalf("%v (CEFORGE_UPDATE_GOLDEN=1 go test ./infra/stack -run TestMetricQueriesGolden writes it)", err)
	}
	if string(want) != string(b) {
		t.Errorf("the template's metric queries changed: CEFORGE_UPDATE_GOLDEN=1 go test ./infra/stack -run TestMetricQueriesGolden, then make the functions emit them (internal/app TestFunctionsEmitWhatTheDashboardReads)\ngot:\n%s\nwant:\n%s", b, want)
	}
	// The variant (alarm topic, other prefix) reads the same metrics.
	v := metricQueries(t, synthVariant(t))
	if len(v) != len(got) {
		t.Errorf("the variant stack reads %d ceforge metrics, the default %d", len(v), len(got))
	}
}
