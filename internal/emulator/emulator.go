// Package emulator starts and drives a local moto server, the stand-in for
// AWS in tests, benchmarks and `make local`.
package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Server is a running (or already running) moto server.
type Server struct {
	Endpoint string
	cmd      *exec.Cmd
}

// Binary finds moto_server: $CEFORGE_MOTO_SERVER (set by the Makefile from
// scripts/emulator.sh, which installs it when missing), else the project's
// virtualenv, else PATH.
func Binary() (string, error) {
	if p := os.Getenv("CEFORGE_MOTO_SERVER"); p != "" {
		return p, nil
	}
	if root, err := ModuleRoot(); err == nil {
		p := filepath.Join(root, ".venv", "bin", "moto_server")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("moto_server")
	if err != nil {
		return "", errors.New("moto_server not found: run `scripts/emulator.sh ensure` (make test does) or set CEFORGE_MOTO_SERVER")
	}
	return p, nil
}

// ModuleRoot is the repository root: the nearest directory up from the
// working directory (a test's package) holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found")
		}
		dir = parent
	}
}

// FreePort asks the kernel for an unused loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start launches moto_server on 127.0.0.1:port (0 picks a free port) and
// waits until it answers, then configures it (Batch without Docker).
// logTo receives the server's output (nil discards it).
func Start(ctx context.Context, port int, logTo io.Writer) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("pick emulator port: %w", err)
		}
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "MOTO_IAM_LOAD_MANAGED_POLICIES=true", "AWS_DEFAULT_REGION=us-east-1")
	if logTo == nil {
		logTo = io.Discard
	}
	cmd.Stdout, cmd.Stderr = logTo, logTo
	// Own process group, so Stop also ends anything the server spawned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := s.Configure(ctx); err == nil {
			return s, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("moto_server exited during start-up: %v", err)
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, errors.New("moto_server did not answer within 30s")
		}
	}
}

// Attach uses an emulator that is already running at endpoint.
func Attach(ctx context.Context, endpoint string) (*Server, error) {
	s := &Server{Endpoint: endpoint}
	if err := s.Configure(ctx); err != nil {
		return nil, fmt.Errorf("emulator at %s: %w", endpoint, err)
	}
	return s, nil
}

// Configure applies ceforge's emulator settings: Batch jobs run without
// Docker (SubmitJob ends SUCCEEDED at once; events drive other states).
func (s *Server) Configure(ctx context.Context) error {
	return s.post(ctx, "/moto-api/config", `{"batch":{"use_docker":false}}`)
}

// Reset wipes all emulated state and re-applies the configuration.
func (s *Server) Reset(ctx context.Context) error {
	if err := s.post(ctx, "/moto-api/reset", ""); err != nil {
		return err
	}
	return s.Configure(ctx)
}

// EnforceIAM makes the emulator authenticate every request from now on
// and check its action against the caller's IAM policies (moto's own
// enforcement: actions only, resources and conditions not); Relax turns it
// off again. Both act on the whole server.
func (s *Server) EnforceIAM(ctx context.Context) error {
	return s.post(ctx, "/moto-api/reset-auth", "0")
}

// Relax turns IAM enforcement off (EnforceIAM).
func (s *Server) Relax(ctx context.Context) error {
	return s.post(ctx, "/moto-api/reset-auth", "inf")
}

func (s *Server) post(ctx context.Context, path, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: HTTP %d", path, res.StatusCode)
	}
	return nil
}

// Stop ends a server this process started (an attached one is left alone).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 50; i++ {
			if err := syscall.Kill(s.cmd.Process.Pid, 0); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(done)
	}()
	<-done
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
}

func decodeJSON(res *http.Response, out any) error {
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(out)
}
