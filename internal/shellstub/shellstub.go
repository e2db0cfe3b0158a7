// Package shellstub executes rendered shell scripts (head-job commands,
// host user data) in tests against stub commands: a scratch directory of
// fake programs (aws, mount, mdadm, nvme, dnf, nextflow, …) that record
// the arguments of every call and then do what the test says. The PATH a
// script sees holds only the stubs and the few real tools a test links in,
// so an unexpected command fails the run instead of touching the machine.
package shellstub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tools are the real programs most scripts need besides the stubbed ones.
var Tools = []string{"bash", "base64", "cat", "cp", "dirname", "mkdir", "rm", "sleep", "mv", "chmod", "touch", "grep", "awk", "tr", "head", "date", "ln", "sed", "tee", "basename", "env", "wc", "sort", "seq", "tar", "gzip", "sh"}

// Sandbox is a stub directory and a scratch root for one script run.
type Sandbox struct {
	t    testing.TB
	Root string // scratch root (tests put fake system paths under it)
	bin  string
	log  string
}

// New makes a sandbox with Tools linked in.
func New(t testing.TB) *Sandbox {
	t.Helper()
	root := t.TempDir()
	s := &Sandbox{t: t, Root: root, bin: filepath.Join(root, ".bin"), log: filepath.Join(root, ".calls")}
	for _, d := range []string{s.bin, s.log} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.Link(Tools...)
	return s
}

// Link makes real programs visible to the script.
func (s *Sandbox) Link(names ...string) {
	s.t.Helper()
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			s.t.Fatalf("shellstub: %s is not installed: %v", n, err)
		}
		dst := filepath.Join(s.bin, n)
		_ = os.Remove(dst)
		if err := os.Symlink(p, dst); err != nil {
			s.t.Fatal(err)
		}
	}
}

// Stub installs a fake program: it records its arguments, then runs body
// (bash; "$@" are its arguments, $STUB_ROOT the sandbox root). An empty
// body succeeds.
func (s *Sandbox) Stub(name, body string) {
	s.t.Helper()
	script := "#!" + s.bash() + "\n" +
		"{ printf '%s\\x1f' \"$@\"; printf '\\x1e'; } >> " + shellQuote(filepath.Join(s.log, name)) + "\n" +
		body + "\n"
	path := filepath.Join(s.bin, name)
	_ = os.Remove(path) // never write through a link to a real tool
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

// Remove takes a program away (a stub or a linked tool).
func (s *Sandbox) Remove(name string) {
	_ = os.Remove(filepath.Join(s.bin, name))
}

func (s *Sandbox) bash() string {
	p, err := exec.LookPath("bash")
	if err != nil {
		s.t.Fatalf("shellstub: bash is not installed: %v", err)
	}
	return p
}

// Calls returns the argument lists of every call of a stub, in order.
func (s *Sandbox) Calls(name string) [][]string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.log, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		s.t.Fatal(err)
	}
	var out [][]string
	for _, rec := range strings.Split(strings.TrimSuffix(string(b), "\x1e"), "\x1e") {
		if rec == "" {
			out = append(out, []string{})
			continue
		}
		out = append(out, strings.Split(strings.TrimSuffix(rec, "\x1f"), "\x1f"))
	}
	return out
}

// Called returns the calls of a stub joined as command lines ("name a b"),
// for compact assertions.
func (s *Sandbox) Called(name string) []string {
	var out []string
	for _, c := range s.Calls(name) {
		out = append(out, strings.TrimSpace(name+" "+strings.Join(c, " ")))
	}
	return out
}

// Result is how a script run ended.
type Result struct {
	Output   string
	ExitCode int
}

// Run executes script with bash in the sandbox, with env (KEY=value) on top
// of a minimal environment (PATH of the sandbox, HOME, STUB_ROOT).
func (s *Sandbox) Run(script string, env ...string) Result {
	s.t.Helper()
	return s.run(script, nil, env...)
}

// RunAndSignal starts script, waits until the file at ready (relative to
// the root) exists, sends sig to the script's shell, and waits for it to end.
func (s *Sandbox) RunAndSignal(script, ready string, sig syscall.Signal, env ...string) Result {
	s.t.Helper()
	return s.run(script, func(p *os.Process) {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join(s.Root, ready)); err == nil {
				_ = p.Signal(sig)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		s.t.Errorf("shellstub: %s never appeared", ready)
	}, env...)
}

func (s *Sandbox) run(script string, during func(*os.Process), env ...string) Result {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bash(), "-c", script)
	cmd.Dir = s.Root
	cmd.Env = append([]string{"PATH=" + s.bin, "HOME=" + s.Root, "STUB_ROOT=" + s.Root, "LC_ALL=C"}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	if during != nil {
		during(cmd.Process)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return Result{Output: out.String()}
	case errors.As(err, &ee):
		if ctx.Err() != nil {
			s.t.Fatalf("shellstub: script timed out; output:\n%s", out.String())
		}
		return Result{Output: out.String(), ExitCode: ee.ExitCode()}
	default:
		s.t.Fatal(fmt.Errorf("run script: %w", err))
		return Result{}
	}
}

// Path returns p under the sandbox root.
func (s *Sandbox) Path(p string) string { return filepath.Join(s.Root, p) }

// ReadFile reads a file under the root ("" when it does not exist).
func (s *Sandbox) ReadFile(p string) string {
	s.t.Helper()
	b, err := os.ReadFile(s.Path(p))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

func shellQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", `'"'"'`) + "'" }
