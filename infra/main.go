// Command infra is the ceforge CDK app. `cdk synth` / `cdk deploy` run it
// through cdk.json ("go run ./infra"); scripts/cdk.sh synth runs it directly
// with CDK_OUTDIR. Configuration comes from CDK context (cdk.json or
// `-c key=value`), documented in infra/README.md. It makes no AWS calls.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/ceforge/ceforge/infra/stack"
)

func main() {
	err := run()
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceforge infra:", err)
		os.Exit(1)
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
	if ctx(app, "nag") != "false" {
		stack.ApplyNag(app, true)
	}
	asm := app.Synth(nil)
	// Without the CDK CLI nobody prints annotations: cdk-nag findings and
	// CDK warnings go to stderr here, and errors fail the synth.
	errs := 0
	for _, m := range *asm.GetStackArtifact(st.ArtifactId()).Messages() {
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
	fmt.Fprintf(os.Stderr, "ceforge infra: synthesized %s into %s\n", cfg.StackName, *asm.Directory())
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
