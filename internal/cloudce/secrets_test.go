package cloudce_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/cloudce/userdata"
	"github.com/ceforge/ceforge/internal/shellstub"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/secrettest"
)

var secretValues = secrettest.Values{
	"DB_PASSWORD":  "p@ss\"w0rd\\ $(id) `id`\n",
	"GITHUB_TOKEN": "ghp_tok3n-value\twith tab\nand two lines ✓",
	"SEQERA_TOKEN": "eyJseqera-t0ken-value",
	"GHCR_TOKEN":   "ghcr-pa55word-value",
}

// An AWS Cloud run with secrets: the head instance's user data names them
// and holds no value; run at boot, it reads them with the instance role
// into Nextflow's secrets file (owner-only, handed to the Nextflow
// container by name), exports the Seqera token to Nextflow by name, and
// logs Docker into the private registry with the password on standard
// input. No value is in the user data, the records, the API's answers,
// the console log or any command line.
func TestCloudRunSecretsReachNextflowOnly(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for name, v := range secretValues {
		res := f.Do(t, "POST", "/secrets", map[string]any{"name": name, "value": v, "region": testenv.Region})
		require.Equal(t, 201, res.Status, string(res.Body))
	}
	ce := f.createCE(t, ceBody(func(b map[string]any, _ map[string]any) {
		b["secrets"] = []string{"DB_PASSWORD"}
		b["seqeraTokenSecret"] = "SEQERA_TOKEN"
		b["registryCredentials"] = []map[string]any{{"registry": "ghcr.io", "username": "ci-bot", "passwordSecret": "GHCR_TOKEN"}}
	}))
	body := pipelineBody(ce.ID)
	body["secrets"] = []string{"GITHUB_TOKEN"}
	r := f.launch(t, body)
	require.Equal(t, []string{"DB_PASSWORD", "GITHUB_TOKEN"}, r.Secrets)

	ud, err := f.EC2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(r.Backend.InstanceID), Attribute: ec2types.InstanceAttributeNameUserData})
	require.NoError(t, err)
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(ud.UserData.Value))
	require.NoError(t, err)
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		require.NoError(t, err)
		raw, err = io.ReadAll(zr)
		require.NoError(t, err)
	}
	script := string(raw)
	secretValues.RequireAbsent(t, "the user data", script)
	for _, want := range []string{"CEFORGE_SECRETS='DB_PASSWORD GITHUB_TOKEN'", "CEFORGE_SEQERA_TOKEN_SECRET='SEQERA_TOKEN'", "CEFORGE_SECRET_PREFIX='ceforge-secrets/'", "ghcr.io ci-bot GHCR_TOKEN"} {
		require.Contains(t, script, want)
	}
	scan, err := f.DynamoDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(testenv.Table)})
	require.NoError(t, err)
	items, _ := json.Marshal(scan.Items)
	secretValues.RequireAbsent(t, "the table", string(items))
	for _, path := range []string{"/runs/" + r.ID, "/compute-envs/" + ce.ID, "/secrets"} {
		res := f.Do(t, "GET", path, nil)
		require.Equal(t, 200, res.Status)
		secretValues.RequireAbsent(t, path, string(res.Body))
	}

	// The instance boots: the user data runs against stubs, its AWS CLI
	// calls go to the emulator with the real SDK.
	s := shellstub.New(t)
	s.AWSCLI(f.Endpoint, testenv.Region)
	s.Link("stat", "hostname")
	for _, name := range []string{"dnf", "yum", "systemctl", "shutdown", "poweroff"} {
		s.Stub(name, "exit 0")
	}
	s.Stub("docker", `case "$1" in
login) cat > "$STUB_ROOT/login-password"; printf '%s\n' "$@" > "$STUB_ROOT/login-args"; printf '%s' "$DOCKER_CONFIG" > "$STUB_ROOT/login-config" ;;
run) printf '%s\n' "$@" > "$STUB_ROOT/run-args"
  cp "$NXF_SECRETS_FILE" "$STUB_ROOT/store.json"
  stat -c %a "$NXF_SECRETS_FILE" > "$STUB_ROOT/store.mode"
  printf '%s' "$TOWER_ACCESS_TOKEN" > "$STUB_ROOT/token"
  exit 0 ;;
*) exit 2 ;;
esac`)
	boot := strings.NewReplacer(userdata.RunDir, s.Path("run"), "/var/log/ceforge", s.Path("log")).Replace(script)
	res := s.Run(boot)
	require.Equal(t, 0, res.ExitCode, res.Output)
	console := s.ReadFile("log/console.log")
	require.Contains(t, console, "logged in to ghcr.io as ci-bot")
	require.Contains(t, console, "ended with exit code 0")
	secretValues.RequireAbsent(t, "the console log", console+res.Output)

	var store []struct{ Name, Value string }
	require.NoError(t, json.Unmarshal([]byte(s.ReadFile("store.json")), &store), s.ReadFile("store.json"))
	require.Equal(t, []struct{ Name, Value string }{{"DB_PASSWORD", secretValues["DB_PASSWORD"]}, {"GITHUB_TOKEN", secretValues["GITHUB_TOKEN"]}}, store)
	require.Equal(t, "600\n", s.ReadFile("store.mode"))
	require.Equal(t, secretValues["SEQERA_TOKEN"], s.ReadFile("token"))
	args := s.ReadFile("run-args")
	secretValues.RequireAbsent(t, "docker run's command line", args)
	for _, want := range []string{"-e\nNXF_SECRETS_FILE\n", "-e\nTOWER_ACCESS_TOKEN\n", "-e\nDOCKER_CONFIG\n"} {
		require.Contains(t, args, want)
	}
	require.Equal(t, secretValues["GHCR_TOKEN"], s.ReadFile("login-password"), "the password reaches docker login on its standard input")
	require.Equal(t, "login\n--username\nci-bot\n--password-stdin\nghcr.io\n", s.ReadFile("login-args"))
	require.Equal(t, s.Path("run")+"/.docker", s.ReadFile("login-config"), "the login goes to the run's own Docker config")
	for _, c := range s.Calls("aws") {
		secretValues.RequireAbsent(t, "an aws command line", strings.Join(c, " "))
	}
}
