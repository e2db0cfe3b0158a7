package stack_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cdk-nag AwsSolutions runs as an aspect during synth; any finding that is
// not suppressed (with a reason) is an error or warning annotation.
func TestNagClean(t *testing.T) {
	for _, s := range allStacks(t) {
		for _, m := range s.messages {
			if m.level == "error" || m.level == "warning" {
				t.Errorf("%s (%s): %s %s", s.cfg.StackName, m.level, m.path, firstLine(m.text))
			}
		}
	}
}

// Every suppression in the template names a rule and gives a reason that
// says something.
func TestNagSuppressionsHaveReasons(t *testing.T) {
	for _, s := range allStacks(t) {
		n := 0
		for id, r := range s.tmpl["Resources"].(map[string]any) {
			md, _ := r.(map[string]any)["Metadata"].(map[string]any)
			nag, _ := md["cdk_nag"].(map[string]any)
			rules, _ := nag["rules_to_suppress"].([]any)
			for _, rule := range rules {
				m := rule.(map[string]any)
				n++
				reason, _ := m["reason"].(string)
				if !strings.HasPrefix(m["id"].(string), "AwsSolutions-") || len(reason) < 40 {
					t.Errorf("%s: suppression %v without a real reason", id, m)
				}
				if m["id"] == "AwsSolutions-IAM5" && m["applies_to"] == nil {
					t.Errorf("%s: blanket IAM5 suppression; name the findings with appliesTo", id)
				}
			}
		}
		if n == 0 {
			t.Error("no suppressions found; metadata walk is broken")
		}
	}
}

// cfnLint finds cfn-lint on PATH or in the project's .venv
// (scripts/cdk.sh lint-deps installs it there).
func cfnLint(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cfn-lint"); err == nil {
		return p
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	venv := filepath.Join(root, ".venv", "bin", "cfn-lint")
	if _, err := os.Stat(venv); err == nil {
		return venv
	}
	t.Fatalf("cfn-lint not found on PATH or in %s: run `scripts/cdk.sh lint-deps` (pip install cfn-lint into .venv) or `pip install cfn-lint`", venv)
	return ""
}

// cfn-lint: no errors on either template. Warnings are reported (the
// templates have none today).
func TestCfnLint(t *testing.T) {
	lint := cfnLint(t)
	d, v := synthDefault(t), synthVariant(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, lint, "--format", "parseable", d.templatePath(), v.templatePath(), d.member.templatePath(), v.member.templatePath())
	out, err := cmd.CombinedOutput()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("cfn-lint: %v", err)
	}
	// Exit status is a bit mask: 2 errors, 4 warnings, 8 informational;
	// 1 is a fatal failure.
	if code&1 != 0 || code&2 != 0 {
		t.Errorf("cfn-lint found errors (exit %d):\n%s", code, out)
	} else if code != 0 {
		t.Logf("cfn-lint warnings/informational (exit %d):\n%s", code, out)
	}
}

// allStacks are both configurations' control plane and member stacks.
func allStacks(t *testing.T) []*synthesis {
	d, v := synthDefault(t), synthVariant(t)
	return []*synthesis{d, v, d.member, v.member}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
