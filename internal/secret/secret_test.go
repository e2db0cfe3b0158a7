package secret_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/handlers"
	"github.com/ceforge/ceforge/internal/member"
	"github.com/ceforge/ceforge/internal/secret"
	"github.com/ceforge/ceforge/internal/secret/smvault"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/membertest"
	"github.com/ceforge/ceforge/internal/testing/trustproxy"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const prefix = "ceforge-"

// value holds what a naive shell or JSON handling would break.
const value = "pa\"ss\\word $HOME `id`\nsecond line ✓\tend\n"

// syncBuffer collects log lines across goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is the API with the secrets routes logging (debug level) into logs.
type fixture struct {
	*apptest.Harness
	logs *syncBuffer
	sm   *secretsmanager.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	h := apptest.New(t)
	f := &fixture{Harness: h, logs: &syncBuffer{}, sm: secretsmanager.NewFromConfig(h.AWS.Config(testenv.Region))}
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// The api's service with a debug log (its writes IAM-checked as the api's).
	svc := &secret.Service{Store: h.Store, Prefix: prefix, Credentials: h.API.Credentials, Vaults: smvault.New(h.API.AWS), Log: log}
	h.Router = handlers.New(handlers.Deps{ComputeEnvs: h.API.ComputeEnvs, Runs: h.API.Runs, Credentials: h.API.Credentials, Secrets: svc, Log: log})
	return f
}

// pipelineSecrets are the names of the pipeline secrets Secrets Manager
// holds (the deployment keeps others, such as the log-cursor key).
func (f *fixture) pipelineSecrets(t *testing.T) []string {
	t.Helper()
	list, err := f.sm.ListSecrets(context.Background(), &secretsmanager.ListSecretsInput{})
	require.NoError(t, err)
	var names []string
	for _, s := range list.SecretList {
		if strings.HasPrefix(aws.ToString(s.Name), prefix+"secrets/") {
			names = append(names, aws.ToString(s.Name))
		}
	}
	return names
}

// stored is the value Secrets Manager holds for a secret name.
func (f *fixture) stored(t *testing.T, name string) []byte {
	t.Helper()
	out, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret.SecretName(prefix, name))})
	require.NoError(t, err)
	return out.SecretBinary
}

// table is every item of the table, as text.
func (f *fixture) table(t *testing.T) string {
	t.Helper()
	out, err := f.DynamoDB.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(testenv.Table)})
	require.NoError(t, err)
	b, err := json.Marshal(out.Items)
	require.NoError(t, err)
	return string(b)
}

// A secret's value goes to Secrets Manager, under the prefix, byte for byte,
// with a policy that lets only the runs' roles read it; it is in no
// response, record or log. Listing shows names and dates; PUT rotates;
// DELETE removes the value and the record.
func TestSecretLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res := f.Do(t, http.MethodPost, "/secrets", map[string]any{"name": "GITHUB_TOKEN", "value": value, "region": testenv.Region, "description": "nf-core pulls"})
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var s secret.Secret
	res.JSON(t, &s)
	require.Equal(t, "GITHUB_TOKEN", s.Name)
	require.Contains(t, s.SecretARN, ":secret:"+prefix+"secrets/GITHUB_TOKEN")
	require.Equal(t, "/secrets/"+s.ID, res.Header.Get("Location"))
	require.Equal(t, []byte(value), f.stored(t, "GITHUB_TOKEN"))

	desc, err := f.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(s.SecretARN)})
	require.NoError(t, err)
	tags := map[string]string{}
	for _, tg := range desc.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	require.Equal(t, map[string]string{"ceforge:managed": "true", "ceforge:secret-id": s.ID}, tags)
	pol, err := f.sm.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String(s.SecretARN)})
	require.NoError(t, err)
	require.JSONEq(t, secret.ReadPolicy(prefix), aws.ToString(pol.ResourcePolicy))

	// Names and dates, nowhere the value.
	res = f.Do(t, http.MethodGet, "/secrets", nil)
	require.Equal(t, http.StatusOK, res.Status)
	var list struct{ Items []secret.Secret }
	res.JSON(t, &list)
	require.Len(t, list.Items, 1)
	require.Equal(t, "GITHUB_TOKEN", list.Items[0].Name)
	require.False(t, list.Items[0].UpdatedAt.IsZero())
	res = f.Do(t, http.MethodGet, "/secrets/"+s.ID, nil)
	require.Equal(t, http.StatusOK, res.Status)

	// Rotation.
	const rotated = "second value\n"
	res = f.Do(t, http.MethodPut, "/secrets/"+s.ID, map[string]any{"value": rotated})
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	require.Equal(t, []byte(rotated), f.stored(t, "GITHUB_TOKEN"))

	// The same name again in the same account and region: a conflict.
	res = f.Do(t, http.MethodPost, "/secrets", map[string]any{"name": "GITHUB_TOKEN", "value": "x", "region": testenv.Region})
	require.Equal(t, http.StatusConflict, res.Status, string(res.Body))
	// In another region it is another secret.
	res = f.Do(t, http.MethodPost, "/secrets", map[string]any{"name": "GITHUB_TOKEN", "value": "west", "region": "us-west-2"})
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))

	for _, place := range map[string]string{"table": f.table(t), "logs": f.logs.String()} {
		for _, v := range []string{"pa\\\"ss", "second line", "second value", "pa\"ss", "west\""} {
			require.NotContains(t, place, v)
		}
	}
	require.Contains(t, f.logs.String(), "GITHUB_TOKEN", "the logs name the secret")

	res = f.Do(t, http.MethodDelete, "/secrets/"+s.ID, nil)
	require.Equal(t, http.StatusNoContent, res.Status, string(res.Body))
	_, err = f.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(s.SecretARN)})
	require.Error(t, err, "the value is gone at once")
	res = f.Do(t, http.MethodGet, "/secrets/"+s.ID, nil)
	require.Equal(t, http.StatusNotFound, res.Status)
	// The name is free again.
	res = f.Do(t, http.MethodPost, "/secrets", map[string]any{"name": "GITHUB_TOKEN", "value": "again", "region": testenv.Region})
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
}

// Bad requests name the field, store nothing and echo no value.
func TestSecretRequestsAreChecked(t *testing.T) {
	f := newFixture(t)
	ok := func() map[string]any {
		return map[string]any{"name": "TOKEN", "value": "s3cr3t-value", "region": testenv.Region}
	}
	with := func(k string, v any) map[string]any { b := ok(); b[k] = v; return b }
	for _, tc := range []struct {
		name  string
		body  any
		code  string
		field string
	}{
		{"missing name", with("name", ""), "missing_field", "name"},
		{"name with a dash", with("name", "MY-TOKEN"), "invalid_field", "name"},
		{"name starting with a digit", with("name", "1TOKEN"), "invalid_field", "name"},
		{"name with a shell", with("name", "A;id"), "invalid_field", "name"},
		{"missing value", with("value", ""), "missing_field", "value"},
		{"control character", with("value", "s3cr3t-value\x1b[2J"), "invalid_field", "value"},
		{"value too big", with("value", strings.Repeat("s", secret.MaxValueBytes+1)), "invalid_field", "value"},
		{"bad region", with("region", "mars-1"), "invalid_field", "region"},
		{"unknown credentials", with("credentialsId", "abcdefghijklmn"), "invalid_field", "credentialsId"},
		{"unknown field", with("arn", "x"), "unknown_field", "arn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := f.Do(t, http.MethodPost, "/secrets", tc.body)
			require.Equal(t, http.StatusBadRequest, res.Status, string(res.Body))
			code, field, _ := res.Error(t)
			require.Equal(t, tc.code, code)
			require.Equal(t, tc.field, field)
			require.NotContains(t, string(res.Body), "s3cr3t-value")
		})
	}
	res := f.Do(t, http.MethodPut, "/secrets/abcdefghijklmn", map[string]any{"value": "x"})
	require.Equal(t, http.StatusNotFound, res.Status)
	require.Empty(t, f.pipelineSecrets(t))
	require.NotContains(t, f.table(t), "s3cr3t-value")
	require.NotContains(t, f.logs.String(), "s3cr3t-value")
}

// A secret for compute environments of a member account is kept in that
// account (written through the member role), not the control plane's.
func TestSecretInAMemberAccount(t *testing.T) {
	var proxy *trustproxy.Proxy
	h := apptest.NewThrough(t, func(endpoint string) string {
		proxy = trustproxy.Start(t, endpoint, membertest.ControlPlaneCaller(prefix))
		return proxy.URL
	})
	ctx := context.Background()
	res := h.Do(t, http.MethodPost, "/credentials", map[string]any{"name": "member", "roleArn": "arn:aws:iam::" + membertest.Account + ":role/" + member.RoleName(prefix)})
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var c credential.Credential
	res.JSON(t, &c)
	membertest.Seed(t, h.Endpoint, membertest.Account, prefix, c.ExternalID)
	res = h.Do(t, http.MethodPost, "/credentials/"+c.ID+"/verify", nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))

	res = h.Do(t, http.MethodPost, "/secrets", map[string]any{"name": "DB_PASSWORD", "value": value, "region": testenv.Region, "credentialsId": c.ID})
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var s secret.Secret
	res.JSON(t, &s)
	require.Equal(t, membertest.Account, s.AccountID)
	require.Contains(t, s.SecretARN, ":"+membertest.Account+":secret:"+prefix+"secrets/DB_PASSWORD")
	got, err := secretsmanager.NewFromConfig(testenv.InAccount(h.Endpoint, membertest.Account)).
		GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret.SecretName(prefix, "DB_PASSWORD"))})
	require.NoError(t, err)
	require.Equal(t, []byte(value), got.SecretBinary)
	_, err = secretsmanager.NewFromConfig(h.AWS.Config(testenv.Region)).
		DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret.SecretName(prefix, "DB_PASSWORD"))})
	require.Error(t, err, "not in the control plane's account")
	require.Equal(t, c.ExternalID, proxy.Assumed()["arn:aws:iam::"+membertest.Account+":role/"+member.RoleName(prefix)])
}
