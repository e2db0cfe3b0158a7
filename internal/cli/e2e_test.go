package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/allinone"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/local"
	"github.com/ceforge/ceforge/internal/local/headsim"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/sigv4"
	"github.com/ceforge/ceforge/internal/testenv"
)

// The end-to-end tests run the built binary against one local stack per
// test binary (signing on, head simulator on), as a user would.

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// simDuration is how long a simulated pipeline takes here (30s in make local).
const simDuration = 6 * time.Second

var testKey = sigv4.Key{AccessKeyID: "AKIAE2ETESTKEY000001", SecretAccessKey: "e2e-secret-key-0123456789abcdefghijklmnop", ARN: "arn:aws:iam::123456789012:user/e2e"}

type e2e struct {
	bin   string
	stack *local.Stack
	env   *testenv.Env
	home  string
	// credentials is a local credentials file as make local writes it
	// (profile ceforge-local); the stack accepts its key too.
	credentials string
	fileKey     sigv4.Key
}

var (
	shared    *e2e
	sharedErr error
	once      sync.Once
)

// stack builds the binary and starts the shared local stack once.
func stack(t *testing.T) *e2e {
	t.Helper()
	once.Do(func() {
		dir, err := os.MkdirTemp("", "ceforge-e2e")
		if err != nil {
			sharedErr = err
			return
		}
		bin := filepath.Join(dir, "ceforge")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/ceforge/ceforge/cmd/ceforge").CombinedOutput()
		if err != nil {
			sharedErr = fmt.Errorf("build ceforge: %v\n%s", err, out)
			return
		}
		env := testenv.NewWithoutReset(t)
		cfg, err := config.FromLookup(func(string) (string, bool) { return "", false })
		if err != nil {
			sharedErr = err
			return
		}
		cfg.Table, cfg.Region, cfg.Endpoint = testenv.Table, testenv.Region, env.Endpoint
		cfg.PermissionsBoundary = testenv.Boundary(cfg.Prefix)
		ctx := context.Background()
		a, err := allinone.New(ctx, cfg, app.Options{AWS: env.AWS, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.Discard})
		if err != nil {
			sharedErr = err
			return
		}
		credentials := filepath.Join(dir, "credentials")
		fileKey, err := local.LoadOrCreateKey(credentials, "file-user")
		if err != nil {
			sharedErr = err
			return
		}
		s, err := local.Start(ctx, a, local.Options{
			Addr: "127.0.0.1:0", LogsAddr: "127.0.0.1:0", Keys: []sigv4.Key{testKey, fileKey}, ReconcileEvery: 2 * time.Second,
			HeadSim: &headsim.Options{Duration: simDuration, Poll: 200 * time.Millisecond},
		})
		if err != nil {
			sharedErr = err
			return
		}
		shared = &e2e{bin: bin, stack: s, env: env, home: dir, credentials: credentials, fileKey: fileKey}
	})
	require.NoError(t, sharedErr)
	return shared
}

// result of one CLI invocation.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the binary with the test key and a configuration file of the
// test's own.
func (e *e2e) cli(t *testing.T, cfgFile string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = []string{
		"HOME=" + e.home, "PATH=" + os.Getenv("PATH"), "CEFORGE_CONFIG=" + cfgFile,
		"AWS_ACCESS_KEY_ID=" + testKey.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + testKey.SecretAccessKey, "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func (r result) ok(t *testing.T) string {
	t.Helper()
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	return strings.TrimSpace(r.stdout)
}

// configured writes a configuration file pointing at the shared stack.
func (e *e2e) configured(t *testing.T) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	e.cli(t, cfg, "", "configure", "--endpoint", "http://"+e.stack.Addr, "--logs-url", "http://"+e.stack.LogsAddr).ok(t)
	return cfg
}

func runJSON(t *testing.T, text string) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(text), &v), text)
	return v
}

const cloudCE = `{"name": "e2e-cloud", "platform": "aws-cloud", "region": "us-east-1", "workDir": "s3://ceforge-e2e/work"}`

const forgeCE = `name: e2e-forge
platform: aws-batch
region: us-east-1
workDir: s3://ceforge-e2e/work
batch:
  forge:
    type: SPOT
    maxCpus: 64
`

func (e *e2e) bucket(t *testing.T) {
	t.Helper()
	s3c := s3.NewFromConfig(e.stack.App.AWS.Config(""), func(o *s3.Options) { o.UsePathStyle = true })
	_, err := s3c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("ceforge-e2e")})
	if err != nil && !strings.Contains(err.Error(), "BucketAlready") {
		require.NoError(t, err)
	}
}

// Every CE kind, a pipeline watched to its end, its log paged and followed,
// a failing run, a cancel, a sweep and the deletes, through the binary.
func TestEndToEnd(t *testing.T) {
	e := stack(t)
	e.bucket(t)
	cfg := e.configured(t)

	// AWS Cloud: dry-run plan, then create and wait.
	plan := e.cli(t, cfg, cloudCE, "ce", "create", "-f", "-", "--dry-run").ok(t)
	require.Contains(t, plan, "Plan for e2e-cloud (aws-cloud, us-east-1), nothing created")
	require.Regexp(t, `create\s+iam-role\s+ceforge-\w+-instance`, plan)
	cloud := e.cli(t, cfg, cloudCE, "ce", "create", "-f", "-", "--wait", "-q").ok(t)
	require.Regexp(t, `^[a-z0-9]{14}$`, cloud)
	got := runJSON(t, e.cli(t, cfg, "", "ce", "get", cloud, "-o", "json").ok(t))
	require.Equal(t, "AVAILABLE", got["status"])
	require.Equal(t, testKey.ARN, got["createdBy"], "the caller is the access key's user")

	// AWS Batch forge from YAML, then manual on the forged queues.
	forgeFile := filepath.Join(t.TempDir(), "forge.yaml")
	require.NoError(t, os.WriteFile(forgeFile, []byte(forgeCE), 0o600))
	forged := e.cli(t, cfg, "", "ce", "create", "-f", forgeFile, "--wait", "-q").ok(t)
	fce := runJSON(t, e.cli(t, cfg, "", "ce", "get", forged, "-o", "json").ok(t))
	require.Equal(t, "AVAILABLE", fce["status"])
	head, work := "ceforge-"+forged+"-head", "ceforge-"+forged+"-work"
	manualCE := fmt.Sprintf(`{"name":"e2e-manual","platform":"aws-batch","region":"us-east-1","workDir":"s3://ceforge-e2e/work","batch":{"headQueue":%q,"computeQueue":%q}}`, head, work)
	manual := e.cli(t, cfg, manualCE, "ce", "create", "-f", "-", "--wait", "-q").ok(t)
	list := e.cli(t, cfg, "", "ce", "list").ok(t)
	for _, id := range []string{cloud, forged, manual} {
		require.Regexp(t, id+`\s+e2e-\w+\s+aws-(cloud|batch)\s+.*AVAILABLE`, list)
	}

	// A pipeline on AWS Cloud, watched to its end.
	run := e.cli(t, cfg, "", "run", "launch", "--ce", cloud, "--pipeline", "nf-core/rnaseq", "--revision", "3.14.0", "-q").ok(t)
	watch := e.cli(t, cfg, "", "run", "watch", run, "--interval", "300ms")
	require.Equal(t, 0, watch.code, watch.stderr)
	require.Regexp(t, run+` RUNNING \(time to running [0-9.]+m?s\)`, watch.stdout)
	require.Regexp(t, run+` SUCCEEDED .*exit 0`, watch.stdout)
	r := runJSON(t, e.cli(t, cfg, "", "run", "get", run, "-o", "json").ok(t))
	require.Equal(t, "SUCCEEDED", r["status"])
	require.NotNil(t, r["timeToRunningMs"])
	logs := e.cli(t, cfg, "", "logs", run).ok(t)
	require.Contains(t, logs, "Launching `nf-core/rnaseq`")
	require.Contains(t, logs, "ended with exit code 0")
	dl := filepath.Join(t.TempDir(), "nextflow.log")
	e.cli(t, cfg, "", "logs", run, "--download", dl).ok(t)
	b, err := os.ReadFile(dl)
	require.NoError(t, err)
	require.Contains(t, string(b), run)

	// A Batch pipeline followed live: the lines arrive while it runs, and
	// it shows RUNNING with task counters on the way.
	brun := e.cli(t, cfg, "", "run", "launch", "--ce", forged, "--pipeline", "nf-core/rnaseq", "-q").ok(t)
	var follow result
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		follow = e.cli(t, cfg, "", "logs", "-f", brun)
	}()
	bwatch := e.cli(t, cfg, "", "run", "watch", brun, "--interval", "300ms")
	wg.Wait()
	require.Equal(t, 0, bwatch.code, bwatch.stderr)
	require.Regexp(t, brun+` RUNNING .*tasks \d+/\d+/\d+/\d+`, bwatch.stdout)
	require.Regexp(t, brun+` SUCCEEDED .*tasks 0/0/5/0 .*exit 0`, bwatch.stdout)
	require.Equal(t, 0, follow.code, follow.stderr)
	require.Contains(t, follow.stdout, "executor >  awsbatch")
	require.Contains(t, follow.stdout, "Succeeded   : 5")
	require.Contains(t, follow.stderr, "is SUCCEEDED]")

	// A run asked to fail, on the manual CE: exit code 3, the failed task shown.
	frun := e.cli(t, cfg, "", "run", "launch", "--ce", manual, "--pipeline", "nf-core/rnaseq", "--label", "simulate=fail", "-q").ok(t)
	fwatch := e.cli(t, cfg, "", "run", "watch", frun, "--interval", "300ms")
	require.Equal(t, 3, fwatch.code, fwatch.stdout+fwatch.stderr)
	// Named by Nextflow's report, or counted from the Batch job events
	// when those arrive first.
	require.Regexp(t, `✗ (task ALIGN \(sample2\) failed \(exit 1|1 task\(s\) failed)`, fwatch.stdout)
	require.Contains(t, fwatch.stderr, "run "+frun+" FAILED")

	// Cancel a running run.
	crun := e.cli(t, cfg, "", "run", "launch", "--ce", cloud, "--pipeline", "nf-core/rnaseq", "-q").ok(t)
	require.Eventually(t, func() bool {
		return runJSON(t, e.cli(t, cfg, "", "run", "get", crun, "-o", "json").ok(t))["status"] == "RUNNING"
	}, 30*time.Second, 200*time.Millisecond)
	e.cli(t, cfg, "", "run", "cancel", crun).ok(t)
	cwatch := e.cli(t, cfg, "", "run", "watch", crun, "--interval", "300ms")
	require.Equal(t, 3, cwatch.code)
	require.Contains(t, cwatch.stdout, crun+" CANCELLED")

	// Lists and quiet output for scripts.
	ids := e.cli(t, cfg, "", "run", "list", "--ce", cloud, "-q").ok(t)
	require.ElementsMatch(t, []string{run, crun}, strings.Fields(ids))
	table := e.cli(t, cfg, "", "run", "list", "--status", "FAILED").ok(t)
	require.Regexp(t, frun+`\s+\S+\s+pipeline\s+`+manual+`\s+FAILED`, table)

	// Sweep: a dry run, waited for, then listed.
	sw := e.cli(t, cfg, "", "sweep", "start", "--dry-run", "--wait")
	require.Equal(t, 0, sw.code, sw.stderr)
	require.Regexp(t, `Status:\s+SUCCEEDED`, sw.stdout)
	require.Regexp(t, `Dry run:\s+true`, sw.stdout)
	swID := strings.Fields(strings.SplitN(sw.stdout, "\n", 2)[0])[1]
	require.Contains(t, e.cli(t, cfg, "", "sweep", "list", "-q").ok(t), swID)
	require.Contains(t, e.cli(t, cfg, "", "sweep", "get", swID).ok(t), "volumes")

	// Deletes: the forge CE with its resources, waited for.
	del := e.cli(t, cfg, "", "ce", "delete", manual, "--wait")
	require.Equal(t, 0, del.code, del.stderr)
	del = e.cli(t, cfg, "", "ce", "delete", forged, "--force", "--wait")
	require.Equal(t, 0, del.code, del.stderr)
	require.Regexp(t, `batch-job-queue\s+ceforge-`+forged+`-head\s+DELETED`, del.stdout)
	e.cli(t, cfg, "", "ce", "delete", cloud, "--wait").ok(t)
}

// Errors: the API's as "field: message (code)" with exit 1, usage with exit 2.
func TestErrorsAndExitCodes(t *testing.T) {
	e := stack(t)
	cfg := e.configured(t)
	res := e.cli(t, cfg, `{"name":"x","platform":"aws-cloud","region":"us-east-1"}`, "ce", "create", "-f", "-")
	require.Equal(t, 1, res.code)
	require.Regexp(t, `ceforge: workDir: .+ \((missing|invalid)_field, request [0-9a-f]+\)`, res.stderr)
	res = e.cli(t, cfg, "", "run", "get", "nosuchrun00000")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `run "nosuchrun00000" not found (not_found`)
	for _, args := range [][]string{{"run", "get"}, {"ce", "get", "a", "b"}, {"run", "list", "--bogus"}, {"ce", "list", "-o", "xml"}, {"ce", "create"}} {
		res = e.cli(t, cfg, "", args...)
		require.Equal(t, 2, res.code, "%v: %s", args, res.stderr)
	}
	res = e.cli(t, filepath.Join(t.TempDir(), "none.yaml"), "", "ce", "list")
	require.Equal(t, 2, res.code)
	require.Contains(t, res.stderr, "run 'ceforge configure'")
	// CEFORGE_ENDPOINT stands in for a configuration.
	cmd := exec.Command(e.bin, "ce", "list", "-q")
	cmd.Env = []string{"HOME=" + e.home, "CEFORGE_CONFIG=/nonexistent/c.yaml", "CEFORGE_ENDPOINT=http://" + e.stack.Addr,
		"AWS_ACCESS_KEY_ID=" + testKey.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + testKey.SecretAccessKey, "AWS_REGION=us-east-1"}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
}

// A request signed with the wrong secret is refused by the local stack as
// API Gateway would: 403 with AWS's message, exit 1.
func TestWrongSignatureRefused(t *testing.T) {
	e := stack(t)
	cfg := e.configured(t)
	c := exec.Command(e.bin, "ce", "list")
	c.Env = []string{"HOME=" + e.home, "CEFORGE_CONFIG=" + cfg, "AWS_ACCESS_KEY_ID=" + testKey.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=wrong-secret", "AWS_REGION=us-east-1"}
	out, err := c.CombinedOutput()
	require.Error(t, err)
	require.Equal(t, 1, c.ProcessState.ExitCode())
	require.Contains(t, string(out), "The request signature we calculated does not match")
	require.Contains(t, string(out), "(forbidden")
	c = exec.Command(e.bin, "ce", "list")
	c.Env = []string{"HOME=" + e.home, "CEFORGE_CONFIG=" + cfg, "AWS_ACCESS_KEY_ID=AKIAUNKNOWNKEY000000",
		"AWS_SECRET_ACCESS_KEY=x", "AWS_REGION=us-east-1"}
	out, _ = c.CombinedOutput()
	require.Contains(t, string(out), "The security token included in the request is invalid")
}

// configure --stack reads the endpoints from the deployed stack's outputs.
func TestConfigureFromStack(t *testing.T) {
	e := stack(t)
	cf := cloudformation.NewFromConfig(e.stack.App.AWS.Config(""))
	tpl := `{"Resources":{"Q":{"Type":"AWS::SQS::Queue"}},"Outputs":{"ApiUrl":{"Value":"https://abc123.execute-api.eu-west-1.amazonaws.com"},"LogsUrl":{"Value":"https://xyz.lambda-url.eu-west-1.on.aws/"}}}`
	name := fmt.Sprintf("ceforge-cfg-%d", time.Now().UnixNano())
	_, err := cf.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String(name), TemplateBody: aws.String(tpl)})
	require.NoError(t, err)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	cmd := exec.Command(e.bin, "configure", "--profile", "prod", "--stack", name)
	cmd.Env = []string{"HOME=" + e.home, "CEFORGE_CONFIG=" + cfg, "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=x", "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL=" + e.env.Endpoint}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	require.Contains(t, string(b), "prod:")
	require.Contains(t, string(b), "endpoint: https://abc123.execute-api.eu-west-1.amazonaws.com")
	require.Contains(t, string(b), "logsUrl: https://xyz.lambda-url.eu-west-1.on.aws/")
}

// The README's other way to the local key: the credentials file make local
// writes, named with AWS_SHARED_CREDENTIALS_FILE, and a ceforge profile
// signed with its ceforge-local profile (no key in the environment).
func TestLocalCredentialsFileProfile(t *testing.T) {
	e := stack(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(e.bin, args...)
		cmd.Env = []string{"HOME=" + e.home, "PATH=" + os.Getenv("PATH"), "CEFORGE_CONFIG=" + cfg,
			"AWS_SHARED_CREDENTIALS_FILE=" + e.credentials, "AWS_CONFIG_FILE=" + filepath.Join(t.TempDir(), "none"), "AWS_EC2_METADATA_DISABLED=true"}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return result{code: code, stdout: out.String(), stderr: errb.String()}
	}
	b, err := os.ReadFile(e.credentials)
	require.NoError(t, err)
	require.Contains(t, string(b), "[ceforge-local]\naws_access_key_id = "+e.fileKey.AccessKeyID)
	run("configure", "--profile", "local", "--endpoint", "http://"+e.stack.Addr, "--logs-url", "http://"+e.stack.LogsAddr,
		"--aws-profile", "ceforge-local", "--region", "us-east-1").ok(t)
	e.bucket(t)
	file := filepath.Join(t.TempDir(), "ce.json")
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(cloudCE, "e2e-cloud", "e2e-credentials-file", 1)), 0o600))
	ce := run("--profile", "local", "ce", "create", "-f", file, "--wait", "-q").ok(t)
	got := runJSON(t, run("--profile", "local", "ce", "get", ce, "-o", "json").ok(t))
	require.Equal(t, e.fileKey.ARN, got["createdBy"], "signed with the file's key")
	run("--profile", "local", "ce", "delete", ce, "--wait").ok(t)
	// Without the profile there is no key to sign with.
	none := run("--endpoint", "http://"+e.stack.Addr, "--region", "us-east-1", "ce", "list")
	require.Equal(t, 1, none.code, none.stdout)
}

// A running studio says how to connect; studio connect prints the plain
// AWS CLI command, and without the Session Manager plugin says so.
func TestStudioConnect(t *testing.T) {
	e := stack(t)
	e.bucket(t)
	cfg := e.configured(t)
	ce := e.cli(t, cfg, strings.Replace(cloudCE, "e2e-cloud", "e2e-studio", 1), "ce", "create", "-f", "-", "--wait", "-q").ok(t)
	st := e.cli(t, cfg, "", "run", "launch", "--ce", ce, "--studio", "jupyter/base-notebook:2024-10-07", "-q").ok(t)
	res := e.cli(t, cfg, "", "studio", "connect", st)
	if res.code == 0 {
		t.Fatalf("connect before RUNNING must fail: %s", res.stdout)
	}
	var r map[string]any
	require.Eventually(t, func() bool {
		r = runJSON(t, e.cli(t, cfg, "", "run", "get", st, "-o", "json").ok(t))
		return r["status"] == "RUNNING"
	}, 30*time.Second, 200*time.Millisecond)
	conn, ok := r["connect"].(map[string]any)
	require.True(t, ok, "a running studio says how to connect: %v", r)
	iid := r["backend"].(map[string]any)["instanceId"].(string)
	require.Equal(t, map[string]any{
		"method": "ssm-port-forwarding", "instanceId": iid, "region": "us-east-1", "port": float64(8888),
		"document": "AWS-StartPortForwardingSession",
		"command":  `aws ssm start-session --region us-east-1 --target ` + iid + ` --document-name AWS-StartPortForwardingSession --parameters '{"portNumber":["8888"],"localPortNumber":["8888"]}'`,
	}, conn)
	printed := e.cli(t, cfg, "", "studio", "connect", st, "--print", "--local-port", "9000").ok(t)
	require.Equal(t, `aws ssm start-session --region us-east-1 --target `+iid+` --document-name AWS-StartPortForwardingSession --parameters '{"portNumber":["8888"],"localPortNumber":["9000"]}'`, printed)
	res = e.cli(t, cfg, "", "studio", "connect", st)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "session-manager-plugin is not installed")
	require.Contains(t, res.stderr, "aws ssm start-session --region us-east-1 --target "+iid)
	e.cli(t, cfg, "", "run", "cancel", st).ok(t)
	require.Equal(t, 3, e.cli(t, cfg, "", "run", "watch", st, "--interval", "300ms").code)
	e.cli(t, cfg, "", "ce", "delete", ce, "--wait").ok(t)
}

// A pipeline's live progress as its (simulated) Nextflow reports it to the
// local API over the trace protocol: run watch shows each process and the
// failed task by name, run progress and run tasks show the counts, cost,
// session and the failure; a relaunch with --resume keeps the work
// directory and Nextflow session, and finds the first process cached.
func TestProgressFailuresAndResume(t *testing.T) {
	e := stack(t)
	e.bucket(t)
	cfg := e.configured(t)
	ce := e.cli(t, cfg, strings.Replace(cloudCE, "e2e-cloud", "e2e-progress", 1), "ce", "create", "-f", "-", "--wait", "-q").ok(t)

	run := e.cli(t, cfg, "", "run", "launch", "--ce", ce, "--pipeline", "nf-core/rnaseq", "--revision", "3.14.0",
		"--label", "simulate=fail", "--max-cost", "100", "-q").ok(t)
	watch := e.cli(t, cfg, "", "run", "watch", run, "--interval", "300ms")
	require.Equal(t, 3, watch.code, watch.stdout+watch.stderr)
	require.Regexp(t, run+` RUNNING .*tasks \d+/\d+/\d+/\d+ \(submitted/running/succeeded/failed\) \[FASTQC \d/2`, watch.stdout)
	require.Contains(t, watch.stdout, "✗ task ALIGN (sample2) failed (exit 1, error strategy terminate): s3://ceforge-e2e/work/")
	require.Regexp(t, run+` FAILED tasks 0/0/3/1 \(submitted/running/succeeded/failed\) \[FASTQC 2/2, ALIGN 1/2\].*nextflow: Process .ALIGN \(sample2\). terminated with an error exit status \(1\)`, watch.stdout)
	require.Contains(t, watch.stderr, "run "+run+" FAILED")

	prog := e.cli(t, cfg, "", "run", "progress", run).ok(t)
	require.Regexp(t, `Phase:\s+completed`, prog)
	require.Regexp(t, `Tasks:\s+0 pending, 0 submitted, 0 running, 3 succeeded, 1 failed, 0 cached`, prog)
	require.Regexp(t, `Cost:\s+\$[0-9.]+ \(tasks \$[0-9.]+, head \$[0-9.]+; prices of \d{4}-\d{2}-\d{2}\), at most \$100.00`, prog)
	require.Regexp(t, `Nextflow:\s+24.10.5`, prog)
	require.Regexp(t, `Error:\s+Process .ALIGN \(sample2\). terminated with an error exit status \(1\)`, prog)
	require.Regexp(t, `(?m)^FASTQC\s+0\s+0\s+0\s+2\s+0\s+0\s+2/2$`, prog)
	require.Regexp(t, `(?m)^ALIGN\s+0\s+0\s+0\s+1\s+1\s+0\s+1/2$`, prog)
	pj := runJSON(t, e.cli(t, cfg, "", "run", "progress", run, "-o", "json").ok(t))
	session := pj["workflow"].(map[string]any)["sessionId"].(string)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-`, session)

	failed := e.cli(t, cfg, "", "run", "tasks", run, "--status", "FAILED").ok(t)
	require.Regexp(t, `(?m)^4\s+ALIGN\s+ALIGN \(sample2\)\s+FAILED\s+1\s+1\s`, failed)
	require.Equal(t, 2, strings.Count(failed, "\n")+1, "the header and the one failed task:\n%s", failed)
	all := runJSON(t, e.cli(t, cfg, "", "run", "tasks", run, "-o", "json").ok(t))
	require.Len(t, all["items"], 4)
	byCost := e.cli(t, cfg, "", "run", "tasks", run, "--sort", "cost", "--limit", "2", "-q").ok(t)
	require.Len(t, strings.Fields(byCost), 2)
	require.Equal(t, 2, e.cli(t, cfg, "", "run", "tasks", run, "--sort", "price").code, "a bad order is a usage error")

	// Relaunch with resume: same work directory and session, the fail
	// label replaced; FASTQC's tasks are cached this time.
	again := e.cli(t, cfg, "", "run", "relaunch", run, "--resume", "--label", "simulate=no", "--idempotency-key", "resume-1", "-q").ok(t)
	require.NotEqual(t, run, again)
	require.Equal(t, again, e.cli(t, cfg, "", "run", "relaunch", run, "--resume", "--label", "simulate=no", "--idempotency-key", "resume-1", "-q").ok(t),
		"the same key relaunches once")
	got := e.cli(t, cfg, "", "run", "get", again).ok(t)
	require.Contains(t, got, "Relaunch of:  "+run+" (resumes session "+session+")")
	require.Contains(t, got, "Progress:     on (ceforge run progress "+again+")")
	require.Contains(t, got, "Max cost:     $100.00")
	nr := runJSON(t, e.cli(t, cfg, "", "run", "get", again, "-o", "json").ok(t))
	require.Equal(t, runJSON(t, e.cli(t, cfg, "", "run", "get", run, "-o", "json").ok(t))["workDir"], nr["workDir"])
	rwatch := e.cli(t, cfg, "", "run", "watch", again, "--interval", "300ms")
	require.Equal(t, 0, rwatch.code, rwatch.stdout+rwatch.stderr)
	require.Regexp(t, again+` SUCCEEDED tasks 0/0/5/0 .*\[FASTQC 2/2, ALIGN 2/2, MULTIQC 1/1\]`, rwatch.stdout)
	rprog := e.cli(t, cfg, "", "run", "progress", again).ok(t)
	require.Regexp(t, `Tasks:\s+0 pending, 0 submitted, 0 running, 3 succeeded, 0 failed, 2 cached`, rprog)
	require.Regexp(t, `Session:\s+`+session+` \(resumed\)`, rprog)
	require.Regexp(t, `(?m)^FASTQC\s+0\s+0\s+0\s+0\s+0\s+2\s+2/2$`, rprog)

	// Without a session to resume (never reported), --resume is refused.
	off := e.cli(t, cfg, "", "run", "launch", "--ce", ce, "--pipeline", "nf-core/rnaseq", "--progress=false", "-q").ok(t)
	require.Contains(t, e.cli(t, cfg, "", "run", "progress", off).ok(t), "not reported: turned off for this run")
	res := e.cli(t, cfg, "", "run", "relaunch", off, "--resume")
	require.NotEqual(t, 0, res.code)
	require.Contains(t, res.stderr, "never reported a Nextflow session")
	e.cli(t, cfg, "", "run", "cancel", off).ok(t)
	require.Equal(t, 3, e.cli(t, cfg, "", "run", "watch", off, "--interval", "300ms").code)
	e.cli(t, cfg, "", "ce", "delete", ce, "--wait").ok(t)
}

// A studio on a forged Batch CE is reached the same way: once RUNNING, its
// connect names the EC2 host its job runs on (the one ECS knows behind the
// container instance Batch reported), and studio connect prints the command
// to that host.
func TestBatchStudioConnect(t *testing.T) {
	e := stack(t)
	e.bucket(t)
	cfg := e.configured(t)
	forgeFile := filepath.Join(t.TempDir(), "forge.yaml")
	require.NoError(t, os.WriteFile(forgeFile, []byte(strings.Replace(forgeCE, "e2e-forge", "e2e-batch-studio", 1)), 0o600))
	ce := e.cli(t, cfg, "", "ce", "create", "-f", forgeFile, "--wait", "-q").ok(t)
	st := e.cli(t, cfg, "", "run", "launch", "--ce", ce, "--studio", "jupyter/base-notebook:2024-10-07", "--port", "8890", "-q").ok(t)
	var r map[string]any
	require.Eventually(t, func() bool {
		r = runJSON(t, e.cli(t, cfg, "", "run", "get", st, "-o", "json").ok(t))
		return r["status"] == "RUNNING" && r["connect"] != nil
	}, 30*time.Second, 200*time.Millisecond)
	backend := r["backend"].(map[string]any)
	require.Equal(t, "batch-job", backend["type"])
	host, _ := backend["hostInstanceId"].(string)
	require.True(t, strings.HasPrefix(host, "i-"), "the job's host: %v", backend)
	ci, _ := backend["containerInstanceArn"].(string)
	cluster, _ := strings.CutPrefix(ci, "arn:aws:ecs:us-east-1:123456789012:container-instance/")
	require.NotEqual(t, ci, cluster, "a container instance ARN: %q", ci)
	// The host is the one ECS knows behind that container instance.
	out, err := ecs.NewFromConfig(e.stack.App.AWS.Config("us-east-1")).DescribeContainerInstances(context.Background(), &ecs.DescribeContainerInstancesInput{
		Cluster: aws.String(strings.Split(cluster, "/")[0]), ContainerInstances: []string{ci},
	})
	require.NoError(t, err)
	require.Len(t, out.ContainerInstances, 1)
	require.Equal(t, host, aws.ToString(out.ContainerInstances[0].Ec2InstanceId))
	conn := r["connect"].(map[string]any)
	require.Equal(t, host, conn["instanceId"])
	require.Equal(t, float64(8890), conn["port"])
	printed := e.cli(t, cfg, "", "studio", "connect", st, "--print").ok(t)
	require.Equal(t, `aws ssm start-session --region us-east-1 --target `+host+` --document-name AWS-StartPortForwardingSession --parameters '{"portNumber":["8890"],"localPortNumber":["8890"]}'`, printed)
	res := e.cli(t, cfg, "", "studio", "connect", st)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "Forwarding localhost:8890 to studio "+st+" (port 8890 on "+host+")")
	require.Contains(t, res.stderr, "session-manager-plugin is not installed")
	e.cli(t, cfg, "", "run", "cancel", st).ok(t)
	require.Equal(t, 3, e.cli(t, cfg, "", "run", "watch", st, "--interval", "300ms").code)
	e.cli(t, cfg, "", "ce", "delete", ce, "--wait").ok(t)
}

// tmuxBin finds tmux (scripts/tools.sh installs it from Debian when missing).
func tmuxBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tmux")
	require.NoError(t, err, "tmux is needed: scripts/tools.sh installs it (make test runs it)")
	return p
}

// run watch in a real terminal: the view is redrawn in place (one status
// line, RUNNING then SUCCEEDED, the task counters), not printed line by line.
func TestWatchInTerminal(t *testing.T) {
	e := stack(t)
	e.bucket(t)
	tmux := tmuxBin(t)
	cfg := e.configured(t)
	forgeFile := filepath.Join(t.TempDir(), "forge.yaml")
	require.NoError(t, os.WriteFile(forgeFile, []byte(strings.Replace(forgeCE, "e2e-forge", "e2e-tmux", 1)), 0o600))
	ce := e.cli(t, cfg, "", "ce", "create", "-f", forgeFile, "--wait", "-q").ok(t)
	run := e.cli(t, cfg, "", "run", "launch", "--ce", ce, "--pipeline", "nf-core/rnaseq", "--revision", "3.14.0", "-q").ok(t)

	sock := fmt.Sprintf("ceforge-test-%d", os.Getpid())
	tm := func(args ...string) string {
		out, err := exec.Command(tmux, append([]string{"-L", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		require.NoError(t, err, "tmux %v: %s", args, out)
		return string(out)
	}
	script := fmt.Sprintf("env -i HOME=%s CEFORGE_CONFIG=%s AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=us-east-1 TERM=xterm %s run watch %s --interval 300ms; echo EXIT=$?; sleep 120",
		e.home, cfg, testKey.AccessKeyID, testKey.SecretAccessKey, e.bin, run)
	tm("new-session", "-d", "-s", "w", "-x", "100", "-y", "20", script)
	t.Cleanup(func() { _ = exec.Command(tmux, "-L", sock, "kill-server").Run() })
	screen := func() string { return tm("capture-pane", "-p", "-t", "w") }
	var seenRunning bool
	var final string
	require.Eventually(t, func() bool {
		s := screen()
		if strings.Contains(s, "status  RUNNING") {
			seenRunning = true
		}
		final = s
		return strings.Contains(s, "EXIT=")
	}, time.Minute, 100*time.Millisecond)
	require.True(t, seenRunning, "the screen showed RUNNING while the run ran")
	require.Contains(t, final, "EXIT=0")
	require.Contains(t, final, "run "+run+"  pipeline-"+run+"  nf-core/rnaseq @ 3.14.0")
	require.Regexp(t, `status  SUCCEEDED after \d+s   time to running [0-9.]+m?s   exit 0`, final)
	require.Contains(t, final, "tasks   0 submitted  0 running  5 succeeded  0 failed")
	require.Equal(t, 1, strings.Count(final, "status  "), "redrawn in place:\n%s", final)
	e.cli(t, cfg, "", "ce", "delete", ce, "--wait").ok(t)
}
