package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// p50 of n runs of a command, in milliseconds.
func p50(b *testing.B, n int, name string, args ...string) float64 {
	b.Helper()
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}

// CLI start-up beside the AWS CLI's: `ceforge version` and `aws --version`,
// each the median of 15 runs on a warm file cache.
func BenchmarkScenarioCLIStartup(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "ceforge")
	if out, err := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/ceforge/ceforge/cmd/ceforge").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	aws, err := exec.LookPath("aws")
	if err != nil {
		b.Fatal("the AWS CLI (aws) is needed for the comparison")
	}
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	p50(b, 3, bin, "version") // warm the page cache
	p50(b, 2, aws, "--version")
	b.ResetTimer()
	var cli, awsMs float64
	for i := 0; i < b.N; i++ {
		cli = p50(b, 15, bin, "version")
		awsMs = p50(b, 15, aws, "--version")
	}
	b.ReportMetric(cli, "ceforge_ms")
	b.ReportMetric(awsMs, "aws_ms")
	b.ReportMetric(cli/awsMs, "ratio")
}
