package stack_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"

	"github.com/ceforge/ceforge/infra/stack"
)

// A synth costs seconds of jsii time, so each configuration is synthesized
// once per test binary and shared by every test.

// synthesis is one synthesized stack.
type synthesis struct {
	cfg      stack.Config
	outdir   string
	assets   string
	tmpl     map[string]any // the template as JSON
	template assertions.Template
	messages []message
	elapsed  time.Duration
	// member is the member stack synthesized in the same app (as
	// infra/main.go does); its own member is nil.
	member *synthesis
}

type message struct{ level, path, text string }

var (
	defaultOnce, variantOnce   sync.Once
	defaultSynth, variantSynth *synthesis
	defaultErr, variantErr     error
)

// TestMain removes the temporary cloud assemblies (unless
// CEFORGE_KEEP_CDK_OUT=1, for debugging) and stops the jsii runtime.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range []*synthesis{defaultSynth, variantSynth} {
		if s == nil {
			continue
		}
		if os.Getenv("CEFORGE_KEEP_CDK_OUT") == "1" {
			fmt.Fprintf(os.Stderr, "cloud assembly kept in %s\n", s.outdir)
			continue
		}
		_ = os.RemoveAll(filepath.Dir(s.outdir))
	}
	jsii.Close()
	os.Exit(code)
}

// synthDefault is the stack with the documented defaults.
func synthDefault(t *testing.T) *synthesis {
	t.Helper()
	defaultOnce.Do(func() { defaultSynth, defaultErr = synth(stack.DefaultConfig()) })
	if defaultErr != nil {
		t.Fatalf("synth (defaults): %v", defaultErr)
	}
	return defaultSynth
}

// variantRegions is a long allowedRegions list (the AWS Cloud supported
// regions), the worst case for policy sizes.
var variantRegions = []string{"eu-west-1", "us-east-1", "us-west-2", "eu-west-2", "us-east-2", "eu-central-1", "us-west-1", "eu-west-3", "ap-southeast-1"}

// variantBuckets is the longest allowedBuckets list, the worst case for the
// permissions boundary's size: 63-character names without a wildcard (each
// is named twice, bucket and objects), but one pattern.
var variantBuckets = func() []string {
	out := []string{"acme-*"}
	for i := 1; i < stack.MaxAllowedBuckets; i++ {
		out = append(out, fmt.Sprintf("acme-genomics-%d-%s", i, strings.Repeat("w", 46)))
	}
	return out
}()

// synthVariant exercises every optional setting: another prefix (and a
// stack name that starts with it), region restriction, JWT authorizer,
// alarm e-mail, dry-run sweeper on another schedule, longer retention.
func synthVariant(t *testing.T) *synthesis {
	t.Helper()
	variantOnce.Do(func() {
		cfg := stack.DefaultConfig()
		cfg.StackName = "acme-ceforge"
		cfg.Prefix = "acme-"
		cfg.AllowedRegions = variantRegions
		cfg.AllowedBuckets = variantBuckets
		cfg.SweeperDryRun = true
		cfg.SweeperSchedule = "rate(30 minutes)"
		cfg.SweeperGrace = "2h"
		cfg.LogRetentionDays = 90
		cfg.LogLevel = "debug"
		cfg.RunLogGroup = "/acme/runs"
		cfg.JwtIssuer = "https://login.example.com/tenant"
		cfg.JwtAudience = []string{"ceforge-cli", "ceforge-web"}
		cfg.AlarmEmail = "ops@example.com"
		cfg.APIRateLimit = 20
		cfg.APIBurstLimit = 40
		cfg.MemberAccounts = []string{"444455556666", "777788889999"}
		variantSynth, variantErr = synth(cfg)
	})
	if variantErr != nil {
		t.Fatalf("synth (variant): %v", variantErr)
	}
	return variantSynth
}

// synth builds an app with one stack, cdk-nag applied, into a temporary
// cloud assembly. The function assets are dummy bootstrap files, one
// content per function so each gets its own asset hash.
func synth(cfg stack.Config) (s *synthesis, err error) {
	var root string
	defer func() {
		if r := recover(); r != nil { // jsii reports JavaScript errors as panics
			s, err = nil, fmt.Errorf("%v", r)
		}
		if err != nil && root != "" {
			_ = os.RemoveAll(root)
		}
	}()
	start := time.Now()
	root, err = os.MkdirTemp("", "ceforge-infra-test-")
	if err != nil {
		return nil, err
	}
	s = &synthesis{cfg: cfg, outdir: filepath.Join(root, "cdk.out"), assets: filepath.Join(root, "build")}
	for _, name := range stack.FunctionNames {
		if err := os.MkdirAll(filepath.Join(s.assets, name), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(s.assets, name, "bootstrap"), []byte(bootstrapContent(name)), 0o755); err != nil {
			return nil, err
		}
	}
	s.cfg.AssetDir = s.assets
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(s.outdir)})
	st, err := stack.NewCeforgeStack(app, s.cfg.StackName, &stack.Props{Config: s.cfg})
	if err != nil {
		return nil, err
	}
	mst, err := stack.NewMemberStack(app, stack.MemberStackName(s.cfg.StackName), s.cfg)
	if err != nil {
		return nil, err
	}
	stack.ApplyNag(app, false)
	asm := app.Synth(nil)
	if err := s.read(asm.GetStackArtifact(st.ArtifactId())); err != nil {
		return nil, err
	}
	s.member = &synthesis{cfg: s.cfg, outdir: s.outdir}
	s.member.cfg.StackName = stack.MemberStackName(s.cfg.StackName)
	if err := s.member.read(asm.GetStackArtifact(mst.ArtifactId())); err != nil {
		return nil, err
	}
	s.elapsed = time.Since(start)
	return s, nil
}

// read takes a stack artifact's messages and template.
func (s *synthesis) read(art cxapi.CloudFormationStackArtifact) error {
	for _, m := range *art.Messages() {
		text := ""
		if m.Entry != nil && m.Entry.Data != nil {
			text = fmt.Sprint(m.Entry.Data)
			if p, ok := m.Entry.Data.(*string); ok && p != nil {
				text = *p
			}
		}
		s.messages = append(s.messages, message{level: string(m.Level), path: *m.Id, text: text})
	}
	raw, err := os.ReadFile(*art.TemplateFullPath())
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &s.tmpl); err != nil {
		return err
	}
	s.template = assertions.Template_FromJSON(&s.tmpl, nil)
	return nil
}

func bootstrapContent(name string) string {
	return "#!/bin/sh\n# ceforge test bootstrap: " + name + "\n"
}

func (s *synthesis) templatePath() string {
	return filepath.Join(s.outdir, s.cfg.StackName+".template.json")
}

// has asserts a resource of type typ with properties matching props
// (assertions.Match semantics), reporting a mismatch as a test error.
func (s *synthesis) has(t *testing.T, typ string, props any) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s not found: %v", typ, r)
		}
	}()
	s.template.HasResourceProperties(jsii.String(typ), props)
}

// hasResource is has for the whole resource (DeletionPolicy, ...).
func (s *synthesis) hasResource(t *testing.T, typ string, resource any) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s not found: %v", typ, r)
		}
	}()
	s.template.HasResource(jsii.String(typ), resource)
}

func (s *synthesis) count(t *testing.T, typ string, n int) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", typ, r)
		}
	}()
	s.template.ResourceCountIs(jsii.String(typ), jsii.Number(n))
}

// resources returns the resources of one type by logical id.
func (s *synthesis) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.tmpl["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// props returns a resource's Properties.
func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// logicalID finds the one resource of typ whose property key equals value.
func (s *synthesis) logicalID(t *testing.T, typ, key string, value any) string {
	t.Helper()
	var found []string
	for id, r := range s.resources(typ) {
		if fmt.Sprint(props(r)[key]) == fmt.Sprint(value) {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s with %s=%v: found %v", typ, key, value, found)
	}
	return found[0]
}

func (s *synthesis) functionID(t *testing.T, name string) string {
	t.Helper()
	return s.logicalID(t, "AWS::Lambda::Function", "FunctionName", s.cfg.Prefix+name)
}

// flat renders a CloudFormation value as text: Ref as ${Id}, GetAtt as
// ${Id.Attr}, Fn::Join joined; for matching ARNs and names.
func flat(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if ref, ok := x["Ref"]; ok {
			return "${" + fmt.Sprint(ref) + "}"
		}
		if ga, ok := x["Fn::GetAtt"].([]any); ok {
			return "${" + fmt.Sprint(ga[0]) + "." + fmt.Sprint(ga[1]) + "}"
		}
		if j, ok := x["Fn::Join"].([]any); ok {
			var b strings.Builder
			for i, p := range j[1].([]any) {
				if i > 0 {
					b.WriteString(j[0].(string))
				}
				b.WriteString(flat(p))
			}
			return b.String()
		}
		if sub, ok := x["Fn::Sub"]; ok {
			return fmt.Sprint(sub)
		}
		b, _ := json.Marshal(x)
		return string(b)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// strs turns a string-or-list policy field into a list of flat strings.
func strs(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, flat(e))
		}
		return out
	default:
		return []string{flat(x)}
	}
}

// statement is one IAM policy statement found in the template.
type statement struct {
	where     string // logical id and property path
	owner     string // logical id of the resource holding the document
	sid       string
	effect    string
	actions   []string
	resources []string
	condition map[string]any
}

// statements walks every policy document of the template: identity
// policies, managed policies, queue policies, role inline policies, trust
// policies; anything under a key named *PolicyDocument or PolicyDocument.
func (s *synthesis) statements() []statement {
	var out []statement
	var walk func(owner, path string, v any)
	walk = func(owner, path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if strings.HasSuffix(k, "PolicyDocument") {
					doc, _ := e.(map[string]any)
					list, _ := doc["Statement"].([]any)
					for i, st := range list {
						m := st.(map[string]any)
						cond, _ := m["Condition"].(map[string]any)
						out = append(out, statement{
							where:     fmt.Sprintf("%s%s.%s.Statement[%d]", owner, path, k, i),
							owner:     owner,
							sid:       fmt.Sprint(m["Sid"]),
							effect:    fmt.Sprint(m["Effect"]),
							actions:   strs(m["Action"]),
							resources: strs(m["Resource"]),
							condition: cond,
						})
					}
					continue
				}
				walk(owner, path+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(owner, fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	ids := make([]string, 0)
	res := s.tmpl["Resources"].(map[string]any)
	for id := range res {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		walk(id, "", res[id])
	}
	return out
}

// roleStatements returns the Allow statements a function's role holds
// through its inline policies and its managed policies.
func (s *synthesis) roleStatements(t *testing.T, fn string) []statement {
	t.Helper()
	fnProps := props(s.resources("AWS::Lambda::Function")[s.functionID(t, fn)])
	roleID := strings.TrimSuffix(strings.TrimPrefix(flat(fnProps["Role"]), "${"), ".Arn}")
	owners := map[string]bool{roleID: true}
	arns, _ := props(s.resources("AWS::IAM::Role")[roleID])["ManagedPolicyArns"].([]any)
	for _, arn := range arns {
		owners[strings.Trim(flat(arn), "${}")] = true
	}
	for id, p := range s.resources("AWS::IAM::Policy") {
		for _, r := range props(p)["Roles"].([]any) {
			if flat(r) == "${"+roleID+"}" {
				owners[id] = true
			}
		}
	}
	var out []statement
	for _, st := range s.statements() {
		if owners[st.owner] && st.effect == "Allow" && !strings.Contains(st.where, "AssumeRolePolicyDocument") {
			out = append(out, st)
		}
	}
	return out
}

// actionsOf collects the actions a function's role allows.
func (s *synthesis) actionsOf(t *testing.T, fn string) map[string][]statement {
	t.Helper()
	out := map[string][]statement{}
	for _, st := range s.roleStatements(t, fn) {
		for _, a := range st.actions {
			out[a] = append(out[a], st)
		}
	}
	return out
}

func obj(m map[string]any) assertions.Matcher { return assertions.Match_ObjectLike(&m) }
func arr(v ...any) assertions.Matcher         { return assertions.Match_ArrayWith(&v) }
