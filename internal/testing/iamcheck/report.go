package iamcheck

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// ReportEnv names the directory where each test binary writes what the
// tier checked (make test sets it; scripts/iamreport sums the files up for
// the bench table).
const ReportEnv = "CEFORGE_IAM_REPORT"

// Report is what one test binary checked.
type Report struct {
	Binary string `json:"binary"`
	// Calls evaluated against their function's (or member) role.
	Calls  int      `json:"calls"`
	Shapes []*Shape `json:"shapes"`
	// Unevaluated are calls made through a customer's role (a compute
	// environment's credentials.roleArn): the tier has no policies for it.
	Unevaluated map[string]int `json:"unevaluated,omitempty"`
	// Unmapped are operations the tier has no mapping for.
	Unmapped map[string]int `json:"unmapped,omitempty"`
	// Seconds the evaluation took, and LookupSeconds the reading of facts
	// inside the recorded calls: what the tier adds to the tests.
	Seconds       float64 `json:"seconds"`
	LookupSeconds float64 `json:"lookupSeconds"`
}

// Snapshot returns the binary's tally so far.
func Snapshot() Report {
	tally.mu.Lock()
	defer tally.mu.Unlock()
	r := Report{Binary: filepath.Base(os.Args[0]), Calls: tally.calls, Unevaluated: map[string]int{}, Unmapped: map[string]int{}, Seconds: tally.elapsed.Seconds(), LookupSeconds: tally.lookups.Seconds()}
	for _, s := range tally.shapes {
		c := *s
		r.Shapes = append(r.Shapes, &c)
	}
	sort.Slice(r.Shapes, func(i, j int) bool {
		a, b := r.Shapes[i], r.Shapes[j]
		if a.Function != b.Function {
			return a.Function < b.Function
		}
		if a.Action != b.Action {
			return a.Action < b.Action
		}
		return a.ResourceType < b.ResourceType
	})
	for k, v := range tally.unevaluatedOps {
		r.Unevaluated[k] = v
	}
	for k, v := range tally.unmappedOps {
		r.Unmapped[k] = v
	}
	return r
}

// WriteReport writes the binary's tally into $CEFORGE_IAM_REPORT (if set
// and anything was checked).
func WriteReport() error {
	dir := os.Getenv(ReportEnv)
	if dir == "" {
		return nil
	}
	r := Snapshot()
	if len(r.Shapes) == 0 && len(r.Unevaluated) == 0 && len(r.Unmapped) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%s-%d-%d.json", r.Binary, os.Getpid(), time.Now().UnixNano())
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}
