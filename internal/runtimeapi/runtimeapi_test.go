package runtimeapi

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func root(t testing.TB) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// build compiles a function. release builds it with the release script
// (scripts/build-function.sh: static, stripped, trimmed, the flags the
// deployed bootstrap has) for goarch; otherwise for this machine with the
// test build's settings, so the compile cache is shared with go test.
func build(t testing.TB, name string, release bool, goarch, dir string) string {
	sub := "host"
	if release {
		sub = "release-" + goarch
	}
	out := filepath.Join(dir, sub, name, "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", out, "./functions/"+name)
	if release {
		cmd = exec.Command("scripts/build-function.sh", name, out, goarch)
	}
	cmd.Dir = root(t)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))
	return out
}

func functions(t testing.TB) []string {
	entries, err := os.ReadDir(filepath.Join(root(t), "functions"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// lambdaEnv is what Lambda gives a function, plus ceforge's configuration.
func lambdaEnv(api, name string) []string {
	return []string{
		"AWS_LAMBDA_RUNTIME_API=" + api, "AWS_LAMBDA_FUNCTION_NAME=ceforge-" + name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=x",
		"CEFORGE_TABLE=ceforge", "CEFORGE_AWS_ENDPOINT=http://127.0.0.1:9", "HOME=/tmp",
		"CEFORGE_SWEEPER_FUNCTION=ceforge-sweeper", "CEFORGE_RECONCILER_FUNCTION=ceforge-reconciler",
		"CEFORGE_PERMISSIONS_BOUNDARY=arn:aws:iam::123456789012:policy/ceforge-boundary",
		"CEFORGE_CURSOR_KEY_SECRET=arn:aws:secretsmanager:us-east-1:123456789012:secret:control-plane/ceforge-log-cursor-key-AbCdEf",
	}
}

// startOnce runs a bootstrap against a fresh stand-in and returns the time
// from exec to its first poll, with the server for further invocations.
func startOnce(t testing.TB, bin, name string) (time.Duration, *Server, func()) {
	s, err := Start()
	require.NoError(t, err)
	cmd := exec.Command(bin)
	cmd.Env = lambdaEnv(s.Addr(), name)
	start := time.Now()
	require.NoError(t, cmd.Start())
	stop := func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait(); _ = s.Close() }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := s.WaitFirstPoll(ctx)
	if err != nil {
		stop()
		t.Fatalf("%s: %v", name, err)
	}
	return first.Sub(start), s, stop
}

// TestEveryFunctionStartsAndAnswers runs each real function binary against
// the stand-in: it must finish init and poll; the api function must answer
// an API Gateway event (401 without an IAM identity).
func TestEveryFunctionStartsAndAnswers(t *testing.T) {
	dir := t.TempDir()
	for _, name := range functions(t) {
		t.Run(name, func(t *testing.T) {
			bin := build(t, name, false, "", dir)
			_, s, stop := startOnce(t, bin, name)
			defer stop()
			if name != "api" {
				return
			}
			ev := `{"version":"2.0","rawPath":"/compute-envs","requestContext":{"http":{"method":"GET","path":"/compute-envs"},"requestId":"r1"}}`
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := s.Invoke(ctx, []byte(ev))
			require.NoError(t, err)
			require.False(t, res.Error, string(res.Body))
			var out struct{ StatusCode int }
			require.NoError(t, json.Unmarshal(res.Body, &out), string(res.Body))
			require.Equal(t, 401, out.StatusCode, string(res.Body))
		})
	}
}

// BenchmarkScenarioBootstrapSize builds every function as `make build` does
// (linux/arm64, static, stripped) and reports each size and the largest, in
// decimal megabytes (10^6 bytes): the stricter reading of the 12 MB target.
func BenchmarkScenarioBootstrapSize(b *testing.B) {
	dir := b.TempDir()
	largest := 0.0
	for _, name := range functions(b) {
		fi, err := os.Stat(build(b, name, true, "arm64", dir))
		require.NoError(b, err)
		mb := float64(fi.Size()) / 1e6
		b.ReportMetric(mb, name+"_MB")
		largest = max(largest, mb)
	}
	b.ReportMetric(largest, "max_MB")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkScenarioBootstrapStartup starts each function 20 times against
// the stand-in Runtime API and reports the p50 time from exec to its first
// poll (its cold-start init), and the worst p50. The binary is the release
// build for this machine's architecture: the deployed flags, runnable here.
// scripts/bench.sh runs it alone, as Lambda runs an init alone on its vCPU;
// beside the other scenario benchmarks it measures their load instead.
func BenchmarkScenarioBootstrapStartup(b *testing.B) {
	dir := b.TempDir()
	worst := 0.0
	for _, name := range functions(b) {
		bin := build(b, name, true, runtime.GOARCH, dir)
		var lat []time.Duration
		for i := 0; i < 20; i++ {
			d, _, stop := startOnce(b, bin, name)
			stop()
			lat = append(lat, d)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		p50 := float64(lat[len(lat)/2].Microseconds()) / 1000
		b.ReportMetric(p50, name+"_p50_ms")
		worst = max(worst, p50)
	}
	b.ReportMetric(worst, "p50_ms")
	b.ReportMetric(0, "ns/op")
}
