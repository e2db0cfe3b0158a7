// Command iamreport sums up what the IAM-checked test tier
// (internal/testing/iamcheck) checked across test binaries: each binary of
// `make test` writes its tally into $CEFORGE_IAM_REPORT (default
// .local/iam-report). It prints, per function, every distinct request shape
// (action on a resource type) the tests made, with the operations behind
// it, the calls made through a customer's role (not evaluated) and any
// operation the tier cannot map.
//
//	go run ./scripts/iamreport            the summary (make test prints it)
//	go run ./scripts/iamreport -bench     one benchmark line for scripts/benchtable
//	go run ./scripts/iamreport -all a,b   fail unless every named function was checked
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ceforge/ceforge/internal/testing/iamcheck"
)

func main() {
	dir := flag.String("dir", envOr(iamcheck.ReportEnv, ".local/iam-report"), "directory of the test binaries' reports")
	bench := flag.Bool("bench", false, "print one benchmark line (BenchmarkScenarioIAMTier) for scripts/benchtable")
	all := flag.String("all", "", "comma-separated functions that must each have checked calls")
	flag.Parse()

	shapes, calls, unevaluated, unmapped, seconds, lookups, binaries, err := load(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "iamreport:", err)
		os.Exit(1)
	}
	denied := 0
	byFn := map[string][]*iamcheck.Shape{}
	for _, s := range shapes {
		denied += s.Denied
		byFn[s.Function] = append(byFn[s.Function], s)
	}
	if *bench {
		fmt.Println("pkg: github.com/ceforge/ceforge/internal/testing/iamcheck")
		fmt.Printf("BenchmarkScenarioIAMTier\t1\t0 ns/op\t%d iam_calls_checked\t%d iam_request_shapes\t%d iam_denied\t%d iam_unmapped\t%.1f iam_eval_s\t%.1f iam_lookup_s\n",
			calls, len(shapes), denied, len(unmapped), seconds, lookups)
		return
	}
	fns := make([]string, 0, len(byFn))
	for f := range byFn {
		fns = append(fns, f)
	}
	sort.Strings(fns)
	fmt.Printf("IAM-checked tier: %d calls checked in %d test binaries (%d distinct request shapes), %d denied requests, %d unmapped operations; it added %.1f s evaluating and %.1f s reading resource state (summed over binaries)\n",
		calls, binaries, len(shapes), denied, len(unmapped), seconds, lookups)
	for _, f := range fns {
		fmt.Printf("\n%s (%d shapes)\n", f, len(byFn[f]))
		for _, s := range byFn[f] {
			mark := ""
			if s.Denied > 0 {
				mark = fmt.Sprintf("  DENIED %d", s.Denied)
			}
			keys := ""
			if len(s.ContextKeys) > 0 {
				keys = " {" + strings.Join(s.ContextKeys, ", ") + "}"
			}
			fmt.Printf("  %-40s %-24s %6d  %s%s%s\n", s.Action, s.ResourceType, s.Requests, strings.Join(s.Operations, ","), keys, mark)
		}
	}
	if len(unevaluated) > 0 {
		fmt.Println("\nnot evaluated (calls through a customer's role, credentials.roleArn):")
		for _, k := range sortedKeys(unevaluated) {
			fmt.Printf("  %s (%d)\n", k, unevaluated[k])
		}
	}
	if len(unmapped) > 0 {
		fmt.Println("\nunmapped operations (add them to internal/testing/iamcheck/requests.go):")
		for _, k := range sortedKeys(unmapped) {
			fmt.Printf("  %s (%d)\n", k, unmapped[k])
		}
	}
	failed := denied > 0 || len(unmapped) > 0
	if *all != "" {
		for _, f := range strings.Split(*all, ",") {
			if len(byFn[f]) == 0 {
				fmt.Printf("\nfunction %s: no call checked: its code is not exercised through its own clients (testenv.Env.Function, apptest)\n", f)
				failed = true
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}

// load merges the reports of dir.
func load(dir string) (shapes []*iamcheck.Shape, calls int, unevaluated, unmapped map[string]int, seconds, lookups float64, binaries int, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, 0, nil, nil, 0, 0, 0, err
	}
	if len(files) == 0 {
		return nil, 0, nil, nil, 0, 0, 0, fmt.Errorf("no reports in %s: run the tests with %s=%s", dir, iamcheck.ReportEnv, dir)
	}
	merged := map[string]*iamcheck.Shape{}
	unevaluated, unmapped = map[string]int{}, map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, 0, nil, nil, 0, 0, 0, err
		}
		var r iamcheck.Report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, 0, nil, nil, 0, 0, 0, fmt.Errorf("%s: %w", f, err)
		}
		binaries++
		calls += r.Calls
		seconds += r.Seconds
		lookups += r.LookupSeconds
		for _, s := range r.Shapes {
			key := s.Function + "|" + s.Action + "|" + s.ResourceType
			m, ok := merged[key]
			if !ok {
				c := *s
				c.Operations, c.ContextKeys = nil, nil
				m = &c
				m.Requests, m.Denied = 0, 0
				merged[key] = m
			}
			m.Requests += s.Requests
			m.Denied += s.Denied
			m.Operations = union(m.Operations, s.Operations)
			m.ContextKeys = union(m.ContextKeys, s.ContextKeys)
		}
		for k, v := range r.Unevaluated {
			unevaluated[k] += v
		}
		for k, v := range r.Unmapped {
			unmapped[k] += v
		}
	}
	for _, s := range merged {
		shapes = append(shapes, s)
	}
	sort.Slice(shapes, func(i, j int) bool {
		a, b := shapes[i], shapes[j]
		return a.Function+"|"+a.Action+"|"+a.ResourceType < b.Function+"|"+b.Action+"|"+b.ResourceType
	})
	return shapes, calls, unevaluated, unmapped, seconds, lookups, binaries, nil
}

func union(a, b []string) []string {
	set := map[string]bool{}
	for _, s := range append(append([]string{}, a...), b...) {
		set[s] = true
	}
	return sortedKeys(set)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}
