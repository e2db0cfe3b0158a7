package stack_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ceforge/ceforge/infra/stack"
)

// BenchmarkScenarioSynth times one synthesis of the default stack with
// cdk-nag, in process (jsii start-up included when it is the first).
func BenchmarkScenarioSynth(b *testing.B) {
	s, err := synth(stack.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(filepath.Dir(s.outdir))
	b.ReportMetric(s.elapsed.Seconds(), "synth_s")
	b.ReportMetric(0, "ns/op")
}
