// Command infra is the ceforge CDK app. `cdk synth` / `cdk deploy` run it
// through cdk.json ("go run ./infra"); scripts/cdk.sh synth runs it directly
// with CDK_OUTDIR. Configuration comes from CDK context (cdk.json or
// `-c key=value`), documented in infra/README.md. It makes no AWS calls.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"

	"github.com/ceforge/ceforge/infra/stack"
)

func main() {
	restore := quietJSII()
	err := run()
	jsii.Close()
	restore()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceforge infra:", err)
		os.Exit(1)
	}
}

// benignExits are what jsii-runtime-go v1.119 prints when its two waits on
// the node process race at Close (the loser gets one of these): the
// synthesis succeeded and the runtime exited normally.
var benignExits = []string{
	"Runtime process exited abnormally: exec: Wait was already called",
	"Runtime process exited abnormally: waitid: no child processes",
}

// quietJSII keeps a successful synthesis quiet: the benign-exit messages
// are dropped, everything else jsii writes to stderr passes through (the
// node end-of-life banner is silenced by JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION,
// set by scripts/cdk.sh and cdk.json: the runtime starts before main).
// restore waits for the filter to drain.
func quietJSII() (restore func()) {
	real := os.Stderr
	r, w, err := os.Pipe()
	if err != nil {
		return func() {}
	}
	os.Stderr = w
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 64<<10)
		for {
			n, err := r.Read(b)
			if n > 0 {
				chunk := string(b[:n])
				for _, m := range benignExits {
					chunk = strings.ReplaceAll(chunk, m, "")
				}
				_, _ = io.WriteString(real, chunk)
			}
			if err != nil {
				return
			}
		}
	}()
	return func() {
		os.Stderr = real
		_ = w.Close()
		<-done
	}
}

func run() error {
	app := awscdk.NewApp(nil)
	cfg, err := stack.ConfigFromContext(app.Node())
	if err != nil {
		return err
	}
	for _, name := range stack.FunctionNames {
		p := filepath.Join(cfg.AssetDir, name, "bootstrap")
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s is missing: run `make build` first (or set context assetDir): %w", p, err)
		}
	}
	props := &stack.Props{Config: cfg}
	// Pin the environment only when asked to (context account/region);
	// otherwise the template is environment-agnostic.
	account, region := ctx(app, "account"), ctx(app, "region")
	if account != "" || region != "" {
		props.Env = &awscdk.Environment{}
		if account != "" {
			props.Env.Account = jsii.String(account)
		}
		if region != "" {
			props.Env.Region = jsii.String(region)
		}
	}
	st, err := stack.NewCeforgeStack(app, cfg.StackName, props)
	if err != nil {
		return err
	}
	// The member stack: one environment-agnostic template, deployed in each
	// member account with its parameters (README, "Member accounts").
	mst, err := stack.NewMemberStack(app, stack.MemberStackName(cfg.StackName), cfg)
	if err != nil {
		return err
	}
	if ctx(app, "nag") != "false" {
		stack.ApplyNag(app, true)
	}
	asm := app.Synth(nil)
	// Without the CDK CLI nobody prints annotations: cdk-nag findings and
	// CDK warnings go to stderr here, and errors fail the synth.
	errs := 0
	var msgs []*cxapi.SynthesisMessage
	for _, id := range []*string{st.ArtifactId(), mst.ArtifactId()} {
		msgs = append(msgs, *asm.GetStackArtifact(id).Messages()...)
	}
	for _, m := range msgs {
		level := string(m.Level)
		if level != "error" && level != "warning" {
			continue
		}
		if level == "error" {
			errs++
		}
		text := ""
		if m.Entry != nil && m.Entry.Data != nil {
			text = fmt.Sprint(m.Entry.Data)
			if p, ok := m.Entry.Data.(*string); ok && p != nil {
				text = *p
			}
		}
		fmt.Fprintf(os.Stderr, "[%s] %s: %s\n", level, *m.Id, text)
	}
	if errs > 0 {
		return fmt.Errorf("%d error annotation(s) (cdk-nag findings need a fix or a suppression with a reason)", errs)
	}
	fmt.Fprintf(os.Stderr, "ceforge infra: synthesized %s and %s into %s\n", cfg.StackName, stack.MemberStackName(cfg.StackName), *asm.Directory())
	return nil
}

func ctx(app awscdk.App, key string) string {
	if !slices.Contains([]string{"account", "region", "nag"}, key) {
		panic("unknown context key " + key)
	}
	v := app.Node().TryGetContext(jsii.String(key))
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
