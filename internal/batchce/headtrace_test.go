package batchce_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/shellstub"
	"github.com/ceforge/ceforge/internal/trace"
)

const traceURL = "https://api.ceforge.test"

// nextflowRecorder records Nextflow's arguments and the environment
// variables that carry the progress endpoint and token.
const nextflowRecorder = `printf '%s\n' "${TOWER_ACCESS_TOKEN:-}" > "$STUB_ROOT/token"
printf '%s\n' "${TOWER_WORKFLOW_ID:-}" > "$STUB_ROOT/workflow-id"
echo ok > .nextflow.log
exit 0`

// A launched Batch run's head, run as AWS Batch runs it (command and
// environment from DescribeJobs) against a stub nextflow and an aws command
// that reads Secrets Manager through the SDK: Nextflow gets -with-tower,
// TOWER_WORKFLOW_ID and the token from the run's secret, which appears
// nowhere in the job.
func TestBatchHeadReportsProgress(t *testing.T) {
	h := apptest.New(t, func(c *config.Config) { c.TraceURL = traceURL })
	makeBucket(t, h, bucket, region)
	ctx := context.Background()
	ce := createCE(t, h, forgeBody("trace", func(b *computeenv.BatchOptions, _ *computeenv.ForgeOptions) { b.WaveEnabled = true }))
	r := launch(t, h, ce.ID)
	require.True(t, r.Trace.Enabled, r.Trace.Reason)
	require.Equal(t, traceURL, r.Trace.Endpoint)
	require.Equal(t, "ceforge-trace/"+r.ID, r.Trace.Secret)

	out, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{r.Backend.JobID}})
	require.NoError(t, err)
	c := out.Jobs[0].Container
	var env []string
	for _, kv := range c.Environment {
		env = append(env, aws.ToString(kv.Name)+"="+aws.ToString(kv.Value))
	}
	joined := strings.Join(env, "\n")
	require.Contains(t, joined, "CEFORGE_TRACE_URL="+traceURL)
	require.Contains(t, joined, "CEFORGE_TRACE_SECRET="+r.Trace.Secret)
	require.NotContains(t, joined, trace.TokenPrefix, "the token is never in the job")
	require.NotContains(t, joined, "TOWER_ACCESS_TOKEN")
	cfg := decodedConfig(t, env)
	require.Contains(t, cfg, `wave.endpoint = 'https://api.ceforge.test/wave'`, "Wave goes through ceforge's relay")

	s := shellstub.New(t)
	s.AWSCLI(h.Endpoint, region)
	s.Stub("nextflow", nextflowRecorder)
	res := s.Run(strings.ReplaceAll(c.Command[2], "/tmp/ceforge", s.Path("launch")), env...)
	require.Equal(t, 0, res.ExitCode, res.Output)
	token := strings.TrimSpace(s.ReadFile("token"))
	require.True(t, strings.HasPrefix(token, trace.TokenPrefix), "the head read the token from the run's secret")
	require.Equal(t, r.ID+"\n", s.ReadFile("workflow-id"))
	args := s.Calls("nextflow")[0]
	require.Equal(t, []string{"-with-tower", traceURL}, args[len(args)-2:])
	require.NotContains(t, res.Output, token, "the token is never printed")
	// The token the head read is the one the run's record hashes.
	require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	var rec run.Run
	_, err = h.Store.Get(ctx, "RUN", r.ID, &rec)
	require.NoError(t, err)
	require.True(t, trace.TokenMatches(token, rec.Trace.TokenHash))
}

func decodedConfig(t *testing.T, env []string) string {
	t.Helper()
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "CEFORGE_NF_CONFIG="); ok {
			b, err := base64.StdEncoding.DecodeString(v)
			require.NoError(t, err)
			return string(b)
		}
	}
	t.Fatal("no CEFORGE_NF_CONFIG")
	return ""
}

// The head's token fetch, each way a head image allows, and its failure.
func TestHeadScriptTrace(t *testing.T) {
	traceEnv := []string{"CEFORGE_TRACE_URL=" + traceURL, "CEFORGE_TRACE_SECRET=ceforge-trace/r1", "CEFORGE_REGION=eu-west-1", "CEFORGE_RESUME=4e2f-sess"}
	cases := []struct {
		name    string
		stubs   func(s *shellstub.Sandbox)
		token   string
		reports bool
	}{
		{name: "aws CLI", reports: true, token: "cft_abc",
			stubs: func(s *shellstub.Sandbox) {
				s.Stub("aws", `[ "$1 $2" = "secretsmanager get-secret-value" ] || exit 0
[ "$4" = eu-west-1 ] && [ "$6" = ceforge-trace/r1 ] || exit 3
echo cft_abc`)
			}},
		{name: "no CLI: curl signs with the task's credentials", reports: true, token: "cft_xyz",
			stubs: func(s *shellstub.Sandbox) {
				s.Remove("aws")
				s.Stub("curl", `case "$*" in
*169.254.170.2/v2/credentials/abc*) echo '{"AccessKeyId":"AKIA1","SecretAccessKey":"sek","Token":"tok","Expiration":"x"}' ;;
*"--aws-sigv4 aws:amz:eu-west-1:secretsmanager --user AKIA1:sek"*"x-amz-security-token: tok"*"X-Amz-Target: secretsmanager.GetSecretValue"*'{"SecretId":"ceforge-trace/r1"}'*https://secretsmanager.eu-west-1.amazonaws.com/*)
  echo '{"ARN":"arn:x","Name":"ceforge-trace/r1","SecretString":"cft_xyz","VersionId":"v"}' ;;
*) exit 22 ;;
esac`)
			}},
		{name: "secret unreadable: the run goes on without progress",
			stubs: func(s *shellstub.Sandbox) {
				s.Stub("aws", `[ "$1" = secretsmanager ] && { echo "AccessDenied" >&2; exit 254; }; exit 0`)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := headSandbox(t)
			tc.stubs(s)
			s.Stub("nextflow", nextflowRecorder)
			env := append(headEnv("s3://bucket/work", traceEnv...), "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/abc")
			res := s.Run(headScriptIn(s), env...)
			require.Equal(t, 0, res.ExitCode, res.Output)
			args := strings.Join(s.Calls("nextflow")[0], " ")
			require.Contains(t, args, "-resume 4e2f-sess")
			if !tc.reports {
				require.NotContains(t, args, "-with-tower")
				require.Equal(t, "\n", s.ReadFile("token"))
				require.Contains(t, res.Output, "running without live progress")
				return
			}
			require.Contains(t, args, "-with-tower "+traceURL)
			require.Equal(t, tc.token+"\n", s.ReadFile("token"))
			require.Equal(t, "r1\n", s.ReadFile("workflow-id"))
			require.NotContains(t, res.Output, tc.token)
		})
	}
	// Without a trace endpoint nothing is fetched.
	s := headSandbox(t)
	s.Stub("nextflow", nextflowRecorder)
	res := s.Run(headScriptIn(s), headEnv("s3://bucket/work")...)
	require.Equal(t, 0, res.ExitCode, res.Output)
	require.NotContains(t, strings.Join(s.Calls("nextflow")[0], " "), "-with-tower")
	for _, c := range s.Calls("aws") {
		require.NotEqual(t, "secretsmanager", c[0])
	}
	_ = batchce.HeadScript
}
