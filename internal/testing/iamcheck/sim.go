package iamcheck

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ceforge/ceforge/internal/emulator"
)

// Simulator is the evaluator process (node/iamsim.js): one per test binary,
// started on first use, answering in order.
type Simulator struct {
	mu      sync.Mutex
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	next    int
	defined map[string]bool
	// cache of answers by role and requests
	cache map[string]cachedCall
}

// Verdict is the evaluation of one request.
type Verdict struct {
	// Decision: Allowed, ImplicitlyDenied, ExplicitlyDenied, or Error (the
	// request could not be evaluated; Mapping says why).
	Decision     string   `json:"decision"`
	ResourceType string   `json:"resourceType"`
	Mapping      []string `json:"mapping"`
	Why          []string `json:"why"`
}

// Allowed reports whether the role allows the request.
func (v Verdict) Allowed() bool { return v.Decision == "Allowed" }

var (
	simOnce sync.Once
	sim     *Simulator
	simErr  error
)

// Shared returns the test binary's simulator, starting it (and installing
// the evaluators with scripts/iamsim.sh when missing) on first use.
func Shared() (*Simulator, error) {
	simOnce.Do(func() { sim, simErr = start() })
	return sim, simErr
}

// Close stops the shared simulator, if it was started.
func Close() {
	if sim != nil {
		sim.close()
	}
}

func start() (*Simulator, error) {
	root, err := emulator.ModuleRoot()
	if err != nil {
		return nil, err
	}
	ensure := exec.Command(filepath.Join(root, "scripts", "iamsim.sh"), "ensure")
	ensure.Stderr = os.Stderr
	modules, err := ensure.Output()
	if err != nil {
		return nil, fmt.Errorf("install the IAM evaluators (scripts/iamsim.sh ensure): %w", err)
	}
	cmd := exec.Command("node", filepath.Join(root, "internal", "testing", "iamcheck", "node", "iamsim.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+strings.TrimSpace(string(modules)))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the IAM evaluator (node): %w", err)
	}
	return &Simulator{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20), defined: map[string]bool{}, cache: map[string]cachedCall{}}, nil
}

func (s *Simulator) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.in.Close()
	_ = s.cmd.Wait()
}

// roundTrip sends one message and decodes its answer into reply.
func (s *Simulator) roundTrip(msg map[string]any, reply any) error {
	s.next++
	msg["id"] = s.next
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := s.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("IAM evaluator: %w", err)
	}
	line, err := s.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("IAM evaluator: %w", err)
	}
	var e struct {
		ID    int    `json:"id"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &e); err != nil {
		return fmt.Errorf("IAM evaluator answer %q: %w", line, err)
	}
	if e.Error != "" {
		return fmt.Errorf("IAM evaluator: %s", e.Error)
	}
	if e.ID != s.next {
		return fmt.Errorf("IAM evaluator answered %d to %d", e.ID, s.next)
	}
	return json.Unmarshal(line, reply)
}

// define makes role known to the evaluator (once per role content).
func (s *Simulator) define(role Role) (string, error) {
	b, err := json.Marshal(role)
	if err != nil {
		return "", err
	}
	key := role.ARN + "#" + fmt.Sprintf("%x", hash(b))
	if s.defined[key] {
		return key, nil
	}
	var reply struct{ Errors []string }
	if err := s.roundTrip(map[string]any{"op": "define", "key": key, "policies": role.Policies, "boundaries": role.Boundaries}, &reply); err != nil {
		return "", err
	}
	if len(reply.Errors) > 0 {
		return "", fmt.Errorf("policies of %s: %s", role.ARN, strings.Join(reply.Errors, "; "))
	}
	s.defined[key] = true
	return key, nil
}

// Check evaluates the requests of one call made by role: a verdict per
// request, and the mapping problems of the call as a whole (a resource
// type its action requires that no request names).
func (s *Simulator) Check(role Role, reqs []Request, waive map[string][]string) ([]Verdict, []string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, err := s.define(role)
	if err != nil {
		return nil, nil, err
	}
	body, err := json.Marshal(reqs)
	if err != nil {
		return nil, nil, err
	}
	wv, _ := json.Marshal(waive)
	ck := key + string(body) + string(wv)
	if cached, ok := s.cache[ck]; ok {
		return cached.verdicts, cached.mapping, nil
	}
	var reply struct {
		Results []Verdict `json:"results"`
		Mapping []string  `json:"mapping"`
	}
	if err := s.roundTrip(map[string]any{"op": "check", "key": key, "principal": role.ARN, "account": arnAccount(role.ARN), "requests": reqs, "waive": waive}, &reply); err != nil {
		return nil, nil, err
	}
	if len(reply.Results) != len(reqs) {
		return nil, nil, fmt.Errorf("IAM evaluator: %d verdicts for %d requests", len(reply.Results), len(reqs))
	}
	s.cache[ck] = cachedCall{verdicts: reply.Results, mapping: reply.Mapping}
	return reply.Results, reply.Mapping, nil
}

type cachedCall struct {
	verdicts []Verdict
	mapping  []string
}

// hash is FNV-1a, enough to tell policy sets apart.
func hash(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
