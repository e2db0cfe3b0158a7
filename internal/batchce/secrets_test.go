package batchce_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/shellstub"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/secrettest"
)

// Values a shell or a JSON writer could break, and that must be found nowhere.
var secretValues = secrettest.Values{
	"DB_PASSWORD":  "p@ss\"w0rd\\ $(id) `id`\n",
	"GITHUB_TOKEN": "ghp_tok3n-value\twith tab\nand two lines ✓",
	"SEQERA_TOKEN": "eyJseqera-t0ken-value",
}

func storeSecrets(t *testing.T, h *apptest.Harness) {
	t.Helper()
	for name, v := range secretValues {
		res := h.Do(t, "POST", "/secrets", map[string]any{"name": name, "value": v, "region": region})
		require.Equal(t, 201, res.Status, string(res.Body))
	}
}

// A Batch run with secrets: the compute environment's and the run's own
// reach Nextflow's secrets file on the head (read with the head's role at
// start), the Seqera token reaches TOWER_ACCESS_TOKEN, tasks that declare a
// secret read it before their script; and no value is in the job
// definition, the job (DescribeJobs), the records, the API's answers or the
// head's log.
func TestBatchRunSecretsReachNextflowOnly(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	storeSecrets(t, h)
	req := forgeBody("secrets")
	req.Secrets, req.SeqeraTokenSecret = []string{"DB_PASSWORD"}, "SEQERA_TOKEN"
	ce := createCE(t, h, req)
	r := launch(t, h, ce.ID, func(l *run.LaunchRequest) { l.Secrets = []string{"GITHUB_TOKEN", "DB_PASSWORD"} })
	require.Equal(t, []string{"DB_PASSWORD", "GITHUB_TOKEN"}, r.Secrets)

	// Readable places: the job, its definition, the records, the API.
	bc := batch.NewFromConfig(h.AWS.Config(region))
	jobs, err := bc.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{r.Backend.JobID}})
	require.NoError(t, err)
	job, _ := json.Marshal(jobs.Jobs)
	secretValues.RequireAbsent(t, "DescribeJobs", string(job))
	defs, err := bc.DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{})
	require.NoError(t, err)
	def, _ := json.Marshal(defs.JobDefinitions)
	secretValues.RequireAbsent(t, "the job definitions", string(def))
	scan, err := h.DynamoDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(testenv.Table)})
	require.NoError(t, err)
	items, _ := json.Marshal(scan.Items)
	secretValues.RequireAbsent(t, "the table", string(items))
	for _, path := range []string{"/runs/" + r.ID, "/compute-envs/" + ce.ID, "/secrets"} {
		res := h.Do(t, "GET", path, nil)
		require.Equal(t, 200, res.Status)
		secretValues.RequireAbsent(t, path, string(res.Body))
	}
	env := map[string]string{}
	var envList []string
	for _, kv := range jobs.Jobs[0].Container.Environment {
		env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
		envList = append(envList, aws.ToString(kv.Name)+"="+aws.ToString(kv.Value))
	}
	require.Equal(t, "DB_PASSWORD GITHUB_TOKEN", env["CEFORGE_SECRETS"])
	require.Equal(t, "ceforge-secrets/", env["CEFORGE_SECRET_PREFIX"])
	require.Equal(t, "SEQERA_TOKEN", env["CEFORGE_SEQERA_TOKEN_SECRET"])

	// The head, run as Batch runs it, with its real command and environment.
	s := shellstub.New(t)
	s.AWSCLI(h.Endpoint, region)
	s.Link("stat")
	s.Stub("nextflow", `cp "$NXF_SECRETS_FILE" "$STUB_ROOT/store.json"
stat -c %a "$NXF_SECRETS_FILE" > "$STUB_ROOT/store.mode"
printf '%s' "$TOWER_ACCESS_TOKEN" > "$STUB_ROOT/token"
cp ceforge.config "$STUB_ROOT/ceforge.config"
echo "nextflow done" > .nextflow.log`)
	res := s.Run(strings.ReplaceAll(jobs.Jobs[0].Container.Command[2], "/tmp/ceforge", s.Path("launch")), envList...)
	require.Equal(t, 0, res.ExitCode, res.Output)
	secretValues.RequireAbsent(t, "the head's log", res.Output)
	var store []struct{ Name, Value string }
	require.NoError(t, json.Unmarshal([]byte(s.ReadFile("store.json")), &store), s.ReadFile("store.json"))
	require.Equal(t, []struct{ Name, Value string }{{"DB_PASSWORD", secretValues["DB_PASSWORD"]}, {"GITHUB_TOKEN", secretValues["GITHUB_TOKEN"]}}, store)
	require.Equal(t, "600\n", s.ReadFile("store.mode"), "Nextflow reads only an owner-only secrets file")
	require.Equal(t, secretValues["SEQERA_TOKEN"], s.ReadFile("token"))

	// Tasks: the config names the secrets; a task's beforeScript reads one
	// with the compute job role and exports it.
	cfg := s.ReadFile("ceforge.config")
	require.Contains(t, cfg, "process.beforeScript = { task.secret ?")
	secretValues.RequireAbsent(t, "ceforge.config", cfg)
	fn := batchce.TaskSecretsScript(region, "ceforge-", "", r.Secrets)
	task := s.Run(fn + `; ceforge_secret_env GITHUB_TOKEN || exit 1; printf '%s' "$GITHUB_TOKEN" > "$STUB_ROOT/task-env"`)
	require.Equal(t, 0, task.ExitCode, task.Output)
	require.Equal(t, secretValues["GITHUB_TOKEN"], s.ReadFile("task-env"))
	other := s.Run(fn + `; ceforge_secret_env SEQERA_TOKEN`)
	require.NotEqual(t, 0, other.ExitCode, "a task reads only the run's secrets")
	require.Contains(t, other.Output, "not one of the run's")
}

// A head that cannot read a secret does not run Nextflow: the run fails
// with the reason in its log, and the post-run script and uploads still run.
func TestBatchHeadWithoutItsSecretsStops(t *testing.T) {
	s := headSandbox(t)
	s.Stub("aws", `[ "$1" = secretsmanager ] && { echo "AccessDeniedException" >&2; exit 254; }
[ "$1 $2" = "s3 cp" ] || exit 2
dst="${@: -1}"; echo "upload ${dst##*/}" >> "$STUB_ROOT/order"`)
	res := s.Run(headScriptIn(s), headEnv("s3://bucket/work", "CEFORGE_SECRETS=GITHUB_TOKEN", "CEFORGE_SECRET_PREFIX=ceforge-secrets/")...)
	require.Equal(t, 1, res.ExitCode, res.Output)
	require.Contains(t, res.Output, "could not read the run's secret GITHUB_TOKEN")
	require.Empty(t, s.Called("nextflow"), "Nextflow does not run without its secrets")
	require.Contains(t, s.ReadFile("order"), "post 1")
}

// A relaunch takes the launch's fields as overrides, secrets included:
// without them the new run keeps the old run's; given, they replace them
// (the compute environment's are added again), checked as a launch's are.
func TestRelaunchSecrets(t *testing.T) {
	h := newHarness(t)
	storeSecrets(t, h)
	req := forgeBody("relaunch-secrets")
	req.Secrets = []string{"SEQERA_TOKEN"}
	ce := createCE(t, h, req)
	old := launch(t, h, ce.ID, func(l *run.LaunchRequest) { l.Secrets = []string{"DB_PASSWORD"} })
	require.Equal(t, []string{"SEQERA_TOKEN", "DB_PASSWORD"}, old.Secrets, "the compute environment's first")

	relaunch := func(body map[string]any) (int, run.Run, string) {
		res := h.Do(t, "POST", "/runs/"+old.ID+"/relaunch", body)
		var r run.Run
		if res.Status == 201 {
			res.JSON(t, &r)
		}
		return res.Status, r, string(res.Body)
	}
	status, kept, body := relaunch(map[string]any{})
	require.Equal(t, 201, status, body)
	require.Equal(t, old.Secrets, kept.Secrets)
	require.Equal(t, old.ID, kept.RelaunchOf)

	status, other, body := relaunch(map[string]any{"secrets": []string{"GITHUB_TOKEN"}})
	require.Equal(t, 201, status, body)
	require.Equal(t, []string{"SEQERA_TOKEN", "GITHUB_TOKEN"}, other.Secrets)

	status, _, body = relaunch(map[string]any{"secrets": []string{"NOT_KEPT"}})
	require.Equal(t, 400, status, body)
	require.Contains(t, body, `"secrets`)
}
