package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ceforge/ceforge/infra/stack"
)

// A successful synth, run as scripts/cdk.sh runs it, prints one line: no
// node end-of-life banner, no benign "Runtime process exited abnormally".
func TestSynthIsQuiet(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "infra")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	assets := filepath.Join(dir, "build")
	for _, f := range stack.FunctionNames {
		if err := os.MkdirAll(filepath.Join(assets, f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(assets, f, "bootstrap"), []byte("stub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cdkSh, err := os.ReadFile(filepath.Join("..", "scripts", "cdk.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cdkSh), `export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="${JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION-18,20}"`) {
		t.Fatal("scripts/cdk.sh no longer silences the end-of-life banner as this test assumes")
	}
	out := filepath.Join(dir, "cdk.out")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "CDK_OUTDIR="+out, `CDK_CONTEXT_JSON={"assetDir":"`+assets+`"}`, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=18,20")
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("synth: %v\n%s", err, got)
	}
	if want := "ceforge infra: synthesized ceforge and ceforge-member into " + out + "\n"; string(got) != want {
		t.Fatalf("synth printed:\n%s\nwant only:\n%s", got, want)
	}
	// make synth produces both stacks' templates.
	for _, name := range []string{"ceforge", "ceforge-member"} {
		if _, err := os.Stat(filepath.Join(out, name+".template.json")); err != nil {
			t.Errorf("%s template: %v", name, err)
		}
	}
}
