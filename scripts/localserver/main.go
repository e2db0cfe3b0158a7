// Command localserver serves the whole ceforge API on 127.0.0.1 against the
// local AWS emulator, with the event consumers, the reconciler and the head
// simulator running, and SigV4 required as in AWS. `make local` starts the
// emulator and then this; see the README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/allinone"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/emulator"
	"github.com/ceforge/ceforge/internal/forgedrole"
	"github.com/ceforge/ceforge/internal/local"
	"github.com/ceforge/ceforge/internal/local/headsim"
	"github.com/ceforge/ceforge/internal/sigv4"
)

// demoBucket is created in the emulator for the example work directory.
const demoBucket = "ceforge-demo"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "localserver:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Fprintf(os.Stderr, "make local: "+format+"\n", args...) }

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// localBoundary creates the permissions boundary policy <prefix>boundary in
// the emulator (once) and returns its ARN, as the CDK app does in AWS. The
// emulator evaluates no policy: the document only marks it a stand-in.
func localBoundary(ctx context.Context, cfg config.Config) (string, error) {
	f, err := awsclient.New(ctx, awsclient.Options{Region: cfg.Region, Endpoint: cfg.Endpoint})
	if err != nil {
		return "", err
	}
	c := iam.NewFromConfig(f.Config(""))
	if err := emulator.SeedAccount(ctx, c); err != nil {
		return "", err
	}
	name := forgedrole.BoundaryName(cfg.Prefix)
	out, err := c.CreatePolicy(ctx, &iam.CreatePolicyInput{
		PolicyName:     aws.String(name),
		Description:    aws.String("local stand-in of the deployed permissions boundary of forged roles"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Sid":"LocalStandIn","Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}`),
	})
	if err == nil {
		return aws.ToString(out.Policy.Arn), nil
	}
	if !strings.Contains(err.Error(), "EntityAlreadyExists") {
		return "", fmt.Errorf("create the local permissions boundary %s: %w", name, err)
	}
	id, err := sts.NewFromConfig(f.Config("")).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("read the emulator's account: %w", err)
	}
	return "arn:aws:iam::" + aws.ToString(id.Account) + ":policy/" + name, nil
}

func run() error {
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if cfg.Endpoint == "" {
		return fmt.Errorf("CEFORGE_AWS_ENDPOINT is not set: the local server only talks to the local emulator")
	}
	apiPort, logsPort := env("CEFORGE_API_PORT", "8080"), env("CEFORGE_LOGS_PORT", "8081")
	cfg.LogsURL = "http://127.0.0.1:" + logsPort
	duration, err := time.ParseDuration(env("CEFORGE_LOCAL_RUN_DURATION", "30s"))
	if err != nil {
		return fmt.Errorf("CEFORGE_LOCAL_RUN_DURATION: %w", err)
	}
	name := "local"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	credentials, err := filepath.Abs(filepath.Join(env("CEFORGE_LOCAL_DIR", ".local"), "credentials"))
	if err != nil {
		return err
	}
	key, err := local.LoadOrCreateKey(credentials, name)
	if err != nil {
		return err
	}
	if cfg.TraceURL == "" {
		// Heads report to the local server (a head running elsewhere needs
		// an address it can reach: set CEFORGE_TRACE_URL).
		cfg.TraceURL = "http://127.0.0.1:" + apiPort
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.PermissionsBoundary == "" {
		if cfg.PermissionsBoundary, err = localBoundary(ctx, cfg); err != nil {
			return err
		}
	}
	say("creating the table, the event queues and the demo bucket in the emulator…")
	a, err := allinone.New(ctx, cfg, app.Options{})
	if err != nil {
		return err
	}
	s, err := local.Start(ctx, a, local.Options{
		Addr: "127.0.0.1:" + apiPort, LogsAddr: "127.0.0.1:" + logsPort, Keys: []sigv4.Key{key},
		HeadSim: &headsim.Options{Duration: duration},
	})
	if err != nil {
		return err
	}
	// A bucket for the example work dir, so the commands below work as printed.
	s3c := s3.NewFromConfig(a.AWS.Config(""), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(demoBucket)}); err != nil && !strings.Contains(err.Error(), "BucketAlready") {
		return fmt.Errorf("create demo bucket: %w", err)
	}
	ready := ""
	if ms, err := strconv.ParseInt(os.Getenv("CEFORGE_LOCAL_STARTED_MS"), 10, 64); err == nil {
		ready = fmt.Sprintf(" in %.1fs", time.Since(time.UnixMilli(ms)).Seconds())
	}
	fmt.Fprintf(os.Stderr, `
ceforge local stack ready%[8]s
  API        http://%[1]s   (SigV4, service execute-api, region %[3]s)
  logs URL   http://%[2]s   (SigV4, service lambda: log follow, as the Function URL)
  emulator   %[4]s
  identity   %[5]s
  runs       simulated heads: SUBMITTED -> RUNNING -> SUCCEEDED in about %[9]s
             (label simulate=fail to end FAILED)

Requests must be signed with the local key, made at the first start and kept
(the same across restarts) in %[12]s, profile %[10]s:

  export AWS_ACCESS_KEY_ID=%[6]s AWS_SECRET_ACCESS_KEY=%[7]s AWS_REGION=%[3]s

Then, in that shell:

  make cli && export PATH="$PWD/bin:$PATH"
  ceforge configure --profile local --endpoint http://%[1]s --logs-url http://%[2]s
  export CEFORGE_PROFILE=local

(Or, with the key left in its file: export AWS_SHARED_CREDENTIALS_FILE=%[12]s
and add --aws-profile %[10]s --region %[3]s to ceforge configure.)

Try:

  CE=$(ceforge ce create --wait --quiet -f - <<'EOF'
  {"name": "demo", "platform": "aws-cloud", "region": "%[3]s", "workDir": "s3://%[11]s/work"}
  EOF
  )
  RUN=$(ceforge run launch --ce $CE --pipeline nf-core/rnaseq --revision 3.14.0 --quiet)
  ceforge run watch $RUN
  ceforge logs $RUN

Ctrl-C stops the server and the emulator.
`, s.Addr, s.LogsAddr, cfg.Region, cfg.Endpoint, key.ARN, key.AccessKeyID, key.SecretAccessKey, ready, duration, local.CredentialsProfile, demoBucket, credentials)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\nstopping…")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Stop(shutdown)
}
