package iamcheck

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Finding is one thing wrong with one call.
type Finding struct {
	Kind    string // FindingDenied, FindingMapping, FindingUnmapped or FindingError
	Call    *Call
	Role    string // the principal's role ARN
	Request Request
	Verdict Verdict
	Detail  string
}

// Kinds of findings.
const (
	// FindingDenied: the deployed role would deny the call.
	FindingDenied = "denied"
	// FindingMapping: the tier's mapping of the call is wrong (iam-data).
	FindingMapping = "mapping"
	// FindingUnmapped: the tier has no mapping for the operation.
	FindingUnmapped = "unmapped"
	// FindingError: the call could not be evaluated.
	FindingError = "error"
)

const fixHint = "the roles' policies are infra/stack/iam.go (after changing them: CEFORGE_UPDATE_GOLDEN=1 go test ./infra/stack -run TestRolePoliciesGolden); or change the code that makes the call"

func (f Finding) String() string {
	ctx, _ := json.Marshal(f.Request.Context)
	switch f.Kind {
	case FindingDenied:
		return fmt.Sprintf("IAM: function %s (role %s) would be DENIED %s on %s\n\tcall: %s\n\tcondition keys: %s\n\twhy: %s\n\tfix: %s",
			f.Call.Function, roleName(f.Role), f.Request.Action, f.Request.Resource, f.Call, ctx,
			strings.Join(f.Verdict.Why, "\n\t     "), fixHint)
	case FindingMapping:
		return fmt.Sprintf("IAM: the tier's mapping of %s is wrong: %s (request %s on %s, condition keys %s); fix internal/testing/iamcheck/requests.go",
			f.Call, f.Detail, f.Request.Action, f.Request.Resource, ctx)
	case FindingUnmapped:
		return fmt.Sprintf("IAM: %s has no IAM mapping, so the tier cannot check it: add %q to internal/testing/iamcheck/requests.go (the action, resource ARNs and condition keys AWS authorizes for it)",
			f.Call, f.Call.Name())
	default:
		return fmt.Sprintf("IAM: %s could not be evaluated: %s", f.Call, f.Detail)
	}
}

func roleName(arn string) string {
	if i := strings.LastIndex(arn, "/"); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

// Principals says who makes a call: the role its requests are evaluated
// against. ok is false for a principal the tier cannot evaluate (a
// customer's role in another account), whose calls are counted apart.
type Principals func(c *Call) (role Role, ok bool, err error)

// DeploymentRoles evaluates each function's calls against its role as the
// stack deploys it for d, and calls acting through another account's role
// against d.Members, or the member stack's role as synthesized
// (MemberRole) for a role named as the member stack names it.
func DeploymentRoles(d Deployment) Principals {
	var mu sync.Mutex
	roles := map[string]Role{}
	return func(c *Call) (Role, bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if c.ActingAs != "" {
			name := roleName(c.ActingAs)
			r, ok := d.Members[name]
			if !ok && name == MemberRoleName(d) {
				key := "member:" + c.ActingAs
				if r, ok = roles[key]; !ok {
					var err error
					if r, err = MemberRole(d, arnAccount(c.ActingAs)); err != nil {
						return Role{}, false, err
					}
					roles[key], ok = r, true
				}
			}
			r.ARN = c.ActingAs
			return r, ok, nil
		}
		if r, ok := roles[c.Function]; ok {
			return r, true, nil
		}
		r, err := FunctionRole(c.Function, d)
		if err != nil {
			return Role{}, false, err
		}
		roles[c.Function] = r
		return r, true, nil
	}
}

// Check evaluates calls and returns what is wrong with them. It counts
// nothing: a test of the tier itself checks calls against narrowed roles,
// or calls made to be denied.
func Check(calls []*Call, principals Principals) []Finding {
	return check(calls, principals, &counts{shapes: map[string]*Shape{}, unevaluatedOps: map[string]int{}, unmappedOps: map[string]int{}})
}

// CheckAndCount is Check, adding every call to the binary's tally (Report):
// what the test environment does with the calls a test leaves when it ends.
func CheckAndCount(calls []*Call, principals Principals) []Finding {
	return check(calls, principals, tally)
}

func check(calls []*Call, principals Principals, tally *counts) []Finding {
	start := time.Now()
	defer func() { tally.addTime(time.Since(start)) }()
	var out []Finding
	for _, c := range calls {
		m, ok := mappings[c.Name()]
		if !ok {
			out = append(out, Finding{Kind: FindingUnmapped, Call: c})
			tally.unmapped(c)
			continue
		}
		role, ok, err := principals(c)
		if err != nil {
			out = append(out, Finding{Kind: FindingError, Call: c, Detail: err.Error()})
			continue
		}
		if !ok {
			tally.unevaluated(c)
			continue
		}
		tally.call()
		reqs := m.requests(c)
		for i := range reqs {
			// Every request carries the region it is sent to; IAM's is
			// us-east-1 wherever the client is configured.
			if reqs[i].Context == nil {
				reqs[i].Context = map[string]any{}
			}
			region := c.Region
			if c.Service == "IAM" {
				region = "us-east-1"
			}
			reqs[i].Context["aws:RequestedRegion"] = region
		}
		if len(reqs) == 0 {
			continue
		}
		s, err := Shared()
		if err != nil {
			out = append(out, Finding{Kind: FindingError, Call: c, Detail: err.Error()})
			continue
		}
		verdicts, problems, err := s.Check(role, reqs, m.waive)
		if err != nil {
			out = append(out, Finding{Kind: FindingError, Call: c, Detail: err.Error()})
			continue
		}
		for _, p := range problems {
			out = append(out, Finding{Kind: FindingMapping, Call: c, Role: role.ARN, Request: reqs[0], Detail: p})
		}
		for i, v := range verdicts {
			for _, p := range v.Mapping {
				out = append(out, Finding{Kind: FindingMapping, Call: c, Role: role.ARN, Request: reqs[i], Verdict: v, Detail: p})
			}
			if len(v.Mapping) == 0 && !v.Allowed() {
				out = append(out, Finding{Kind: FindingDenied, Call: c, Role: role.ARN, Request: reqs[i], Verdict: v})
			}
			tally.request(c, reqs[i], v)
		}
	}
	return out
}

// The binary's tally of everything checked, for the report.
var tally = &counts{shapes: map[string]*Shape{}, unevaluatedOps: map[string]int{}, unmappedOps: map[string]int{}}

type counts struct {
	mu             sync.Mutex
	calls          int // evaluated
	shapes         map[string]*Shape
	unevaluatedOps map[string]int
	unmappedOps    map[string]int
	elapsed        time.Duration // evaluating
	lookups        time.Duration // reading facts inside the calls
}

// Shape is one distinct kind of request: a function's action on one type
// of resource.
type Shape struct {
	Function     string   `json:"function"`
	Action       string   `json:"action"`
	ResourceType string   `json:"resourceType"`
	Operations   []string `json:"operations"` // the calls that needed it
	ContextKeys  []string `json:"contextKeys,omitempty"`
	Requests     int      `json:"requests"`
	Denied       int      `json:"denied"`
	Example      string   `json:"example"` // a resource ARN
}

func (t *counts) request(c *Call, r Request, v Verdict) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rt := v.ResourceType
	if rt == "" {
		rt = "?"
	}
	key := c.Function + "|" + r.Action + "|" + rt
	s, ok := t.shapes[key]
	if !ok {
		s = &Shape{Function: c.Function, Action: r.Action, ResourceType: rt, Example: r.Resource}
		t.shapes[key] = s
	}
	s.Requests++
	if !v.Allowed() {
		s.Denied++
	}
	if !contains(s.Operations, c.Name()) {
		s.Operations = append(s.Operations, c.Name())
		sort.Strings(s.Operations)
	}
	for k := range r.Context {
		if k != "aws:RequestedRegion" && !contains(s.ContextKeys, k) {
			s.ContextKeys = append(s.ContextKeys, k)
			sort.Strings(s.ContextKeys)
		}
	}
}

func (t *counts) call() {
	t.mu.Lock()
	t.calls++
	t.mu.Unlock()
}

func (t *counts) unevaluated(c *Call) {
	t.mu.Lock()
	t.unevaluatedOps[c.Function+" acting as a customer role: "+c.Name()]++
	t.mu.Unlock()
}

func (t *counts) unmapped(c *Call) {
	t.mu.Lock()
	t.unmappedOps[c.Function+": "+c.Name()]++
	t.mu.Unlock()
}

func (t *counts) addLookup(d time.Duration) {
	t.mu.Lock()
	t.lookups += d
	t.mu.Unlock()
}

func (t *counts) addTime(d time.Duration) {
	t.mu.Lock()
	t.elapsed += d
	t.mu.Unlock()
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}
