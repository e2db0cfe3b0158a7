// Command benchtable reads `go test -bench` output on stdin and prints every
// figure as one Markdown table with fixed columns (area, figure, value,
// unit, target, met), so runs can be compared line by line.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// target is a figure's goal: value op limit.
type target struct {
	op    string // "<=" or ">="
	limit float64
}

// targets of the issues; a figure without one is reported with "-".
var targets = map[string]target{
	"CreateCE/p50_ms":                          {"<=", 200},
	"CloudLaunch/ec2_calls/launch":             {"<=", 1},
	"CloudLaunch/ddb_calls/launch":             {"<=", 3},
	"BatchEventThroughput/events/s":            {">=", 50000},
	"LogFollowLatency/follow_p50_ms":           {"<=", 1500},
	"SweepThrottled/deletions_per_s_ratio":     {">=", 0.9},
	"SweepThrottled/throttle_errors_in_report": {"<=", 0},
	"SweepThrottled/wrongly_deleted":           {"<=", 0},
	"SweepThrottled/missed_after_resume":       {"<=", 0},
	"BootstrapSize/max_MB":                     {"<=", 12},
	"BootstrapStartup/p50_ms":                  {"<=", 40},
	"EventChaos/runs_wrong":                    {"<=", 0},
	"EventChaos/runs_lost":                     {"<=", 0},
	"Load/status_5xx":                          {"<=", 0},
	"Load/runs_lost":                           {"<=", 0},
	"Load/runs_duplicated":                     {"<=", 0},
	"Load/instance_mismatches":                 {"<=", 0},
	"CLIStartup/ratio":                         {"<=", 0.2},
	"MakeLocalReady/ready_s":                   {"<=", 60},
	"TraceWrites/writes_per_task_change":       {"<=", 1.05},
	"TraceIngest100k/writes_per_task_change":   {"<=", 1.05},
	"TraceIngest100k/queries_per_page":         {"<=", 1},
	"TaskPageRead/queries_per_page":            {"<=", 1},
	"IAMTier/iam_denied":                       {"<=", 0},
	"IAMTier/iam_unmapped":                     {"<=", 0},
}

var line = regexp.MustCompile(`^Benchmark(\S+?)(-\d+)?\s+(\d+)\s+(.+)$`)

type row struct {
	area, figure, unit string
	value              float64
}

func main() {
	var rows []row
	pkg := ""
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	failed := false
	for sc.Scan() {
		text := sc.Text()
		if strings.HasPrefix(text, "pkg: ") {
			pkg = strings.TrimPrefix(text, "pkg: github.com/ceforge/ceforge/")
			continue
		}
		if strings.HasPrefix(text, "FAIL") || strings.HasPrefix(text, "--- FAIL") || strings.HasPrefix(text, "panic:") {
			fmt.Fprintln(os.Stderr, text)
			failed = true
			continue
		}
		m := line.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		name := strings.TrimPrefix(m[1], "Scenario")
		fields := strings.Fields(m[4])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			rows = append(rows, row{area: pkg, figure: name, unit: fields[i+1], value: v})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].area < rows[j].area })
	fmt.Println("| area | figure | value | unit | target | met |")
	fmt.Println("|---|---|---:|---|---|---|")
	for _, r := range rows {
		tgt, met := "-", "-"
		if t, ok := targets[r.figure+"/"+r.unit]; ok {
			tgt = fmt.Sprintf("%s %g", t.op, t.limit)
			ok := r.value <= t.limit
			if t.op == ">=" {
				ok = r.value >= t.limit
			}
			met = map[bool]string{true: "yes", false: "NO"}[ok]
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", r.area, r.figure, format(r.value), r.unit, tgt, met)
	}
	if failed {
		os.Exit(1)
	}
}

func format(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e12:
		return strconv.FormatInt(int64(v), 10)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}
