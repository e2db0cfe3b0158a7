package local_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ceforge/ceforge/internal/emulator"
)

var readyLine = regexp.MustCompile(`ceforge local stack ready in ([0-9.]+)s`)

// `make local` from start to ready on a warm build cache: scripts/local.sh
// as a user runs it (its own emulator, the server build, the stack), timed
// until it prints that it is ready; then Ctrl-C.
func BenchmarkScenarioMakeLocalReady(b *testing.B) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	warm := exec.Command("go", "build", "-o", filepath.Join(root, ".local", "localserver"), "./scripts/localserver")
	warm.Dir = root
	if out, err := warm.CombinedOutput(); err != nil {
		b.Fatalf("warm the build cache: %v\n%s", err, out)
	}
	var last float64
	for i := 0; i < b.N; i++ {
		ports := make([]int, 3)
		for j := range ports {
			p, err := emulator.FreePort()
			if err != nil {
				b.Fatal(err)
			}
			ports[j] = p
		}
		cmd := exec.Command("bash", "scripts/local.sh")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), fmt.Sprintf("CEFORGE_EMULATOR_PORT=%d", ports[0]), fmt.Sprintf("CEFORGE_API_PORT=%d", ports[1]),
			fmt.Sprintf("CEFORGE_LOGS_PORT=%d", ports[2]), "CEFORGE_LOCAL_DIR="+b.TempDir(), "CEFORGE_LOCAL_STARTED_MS=")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stdout = nil
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		found := make(chan float64, 1)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
					v, _ := strconv.ParseFloat(m[1], 64)
					found <- v
				}
			}
			close(found)
		}()
		select {
		case v, ok := <-found:
			if !ok {
				b.Fatal("make local ended without becoming ready")
			}
			last = time.Since(start).Seconds()
			_ = v
		case <-time.After(3 * time.Minute):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			b.Fatal("make local was not ready within 3 minutes")
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	b.ReportMetric(last, "ready_s")
}
