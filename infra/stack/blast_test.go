package stack_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ceforge/ceforge/infra/stack"
)

// Reserved concurrency: the event consumers and the reconciler always have
// theirs, the API and the log followers can never take more than theirs,
// and the total leaves the 100 executions AWS keeps unreserved in an
// account with the default quota (1,000).
func TestReservedConcurrencyProtectsConsumers(t *testing.T) {
	s := synthDefault(t)
	total := 0
	reserved := map[string]int{}
	for _, name := range stack.FunctionNames {
		fn := props(s.resources("AWS::Lambda::Function")[s.functionID(t, name)])
		n, ok := fn["ReservedConcurrentExecutions"].(float64)
		if !ok || n < 1 {
			t.Errorf("%s has no reserved concurrency", name)
		}
		reserved[name] = int(n)
		total += int(n)
	}
	if total > 1000-100 {
		t.Errorf("reserved concurrency %d leaves less than 100 unreserved in a 1,000 account", total)
	}
	for _, esm := range s.resources("AWS::Lambda::EventSourceMapping") {
		p := props(esm)
		fnID := strings.Trim(flat(p["FunctionName"]), "${}")
		sc, _ := p["ScalingConfig"].(map[string]any)
		max, _ := sc["MaximumConcurrency"].(float64)
		for _, name := range []string{stack.FnBatchEvents, stack.FnEC2Events} {
			if fnID == s.functionID(t, name) && (max == 0 || int(max) > reserved[name]) {
				t.Errorf("%s: event source concurrency %v above its reserved %d (it would throttle itself)", name, max, reserved[name])
			}
		}
	}
	if reserved[stack.FnReconciler] < 2 {
		t.Errorf("the reconciler needs room for its schedule and the API's hand-offs: %d", reserved[stack.FnReconciler])
	}
}

// The log-cursor key is a secret generated at deploy, readable by the two
// functions that sign cursors only, and never by a forged role (whose
// boundary reads <prefix>* secrets).
func TestCursorKeySecret(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		id := s.logicalID(t, "AWS::SecretsManager::Secret", "Name", stack.CursorKeySecretName(s.cfg.Prefix))
		sec := props(s.resources("AWS::SecretsManager::Secret")[id])
		if strings.HasPrefix(stack.CursorKeySecretName(s.cfg.Prefix), s.cfg.Prefix) {
			t.Errorf("cursor key secret named with the prefix: forged roles could read it")
		}
		gen, _ := sec["GenerateSecretString"].(map[string]any)
		if n, _ := gen["PasswordLength"].(float64); n < 32 {
			t.Errorf("cursor key of %v characters", gen["PasswordLength"])
		}
		for _, name := range stack.FunctionNames {
			env, _ := props(s.resources("AWS::Lambda::Function")[s.functionID(t, name)])["Environment"].(map[string]any)
			vars, _ := env["Variables"].(map[string]any)
			want := name == stack.FnAPI || name == stack.FnLogs
			if got := flat(vars["CEFORGE_CURSOR_KEY_SECRET"]); (got == "${"+id+"}") != want {
				t.Errorf("%s: CEFORGE_CURSOR_KEY_SECRET = %q", name, got)
			}
			reads := false
			for _, st := range s.roleStatements(t, name) {
				if slices.Contains(st.actions, "secretsmanager:GetSecretValue") {
					reads = true
					if !slices.Equal(st.resources, []string{"${" + id + "}"}) {
						t.Errorf("%s reads secrets %v", name, st.resources)
					}
				}
			}
			if reads != want {
				t.Errorf("%s reads the cursor key: %v, want %v", name, reads, want)
			}
		}
	}
}

// Every function knows the allowed buckets, so the API refuses what IAM
// would deny.
func TestAllowedBucketsConfigured(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		for _, name := range stack.FunctionNames {
			env, _ := props(s.resources("AWS::Lambda::Function")[s.functionID(t, name)])["Environment"].(map[string]any)
			vars, _ := env["Variables"].(map[string]any)
			if got, want := fmt.Sprint(vars["CEFORGE_ALLOWED_BUCKETS"]), strings.Join(s.cfg.Buckets(), ","); got != want {
				t.Errorf("%s: CEFORGE_ALLOWED_BUCKETS = %q, want %q", name, got, want)
			}
		}
	}
}
