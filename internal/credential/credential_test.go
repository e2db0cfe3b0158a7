package credential_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/member"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/membertest"
	"github.com/ceforge/ceforge/internal/testing/trustproxy"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	prefix     = "ceforge-"
	workBucket = "ceforge-member-work"
)

// fixture is the whole App with every AWS call going through the trust
// proxy, so AssumeRole is decided by the member role's trust policy as in
// AWS.
type fixture struct {
	*apptest.Harness
	proxy *trustproxy.Proxy
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{}
	f.Harness = apptest.NewThrough(t, func(endpoint string) string {
		f.proxy = trustproxy.Start(t, endpoint, membertest.ControlPlaneCaller(prefix))
		return f.proxy.URL
	})
	return f
}

func (f *fixture) register(t *testing.T, name, roleARN string) credential.Credential {
	t.Helper()
	res := f.Do(t, http.MethodPost, "/credentials", map[string]any{"name": name, "roleArn": roleARN})
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	require.Equal(t, "/credentials/", res.Header.Get("Location")[:len("/credentials/")])
	var c credential.Credential
	res.JSON(t, &c)
	return c
}

func (f *fixture) verify(t *testing.T, id string) credential.Credential {
	t.Helper()
	res := f.Do(t, http.MethodPost, "/credentials/"+id+"/verify", nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	var c credential.Credential
	res.JSON(t, &c)
	return c
}

func memberRole(account string) string {
	return "arn:aws:iam::" + account + ":role/" + member.RoleName(prefix)
}

func cloudCE(name, credentialsID string) map[string]any {
	return map[string]any{"name": name, "platform": "aws-cloud", "region": testenv.Region,
		"workDir": "s3://" + workBucket + "/work", "credentialsId": credentialsID}
}

// Registering a role: ceforge generates the External ID, cannot assume the
// role until the member stack trusts it (UNVERIFIED, with the setup to
// deploy), verifies it once it does (every group reported), and then a
// compute environment on it is created in the member account; credentials
// in use cannot be deleted.
func TestRegisterVerifyAndUse(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	c := f.register(t, "prod", memberRole(membertest.Account))
	require.True(t, member.ValidExternalID(prefix, c.ExternalID), c.ExternalID)
	require.Equal(t, membertest.Account, c.AccountID)
	require.Equal(t, credential.StatusUnverified, c.Status)
	require.False(t, c.Verification.Assumed)
	require.Contains(t, c.StatusReason, "AssumeRole was refused")
	require.Contains(t, c.Setup, "ExternalId="+c.ExternalID)
	require.Contains(t, c.Setup, "ControlPlaneAccount="+testenv.Account)

	// Another registration of the same role gets another External ID.
	other := f.register(t, "prod-again", memberRole(membertest.Account))
	require.NotEqual(t, c.ExternalID, other.ExternalID)

	// A CE cannot name unverified credentials.
	res := f.Do(t, http.MethodPost, "/compute-envs", cloudCE("too-early", c.ID))
	require.Equal(t, http.StatusConflict, res.Status, string(res.Body))
	code, field, _ := res.Error(t)
	require.Equal(t, "credentials_unverified", code)
	require.Equal(t, "credentialsId", field)

	// The member stack is deployed with the generated External ID.
	membertest.Seed(t, f.Endpoint, membertest.Account, prefix, c.ExternalID)
	c = f.verify(t, c.ID)
	require.Equal(t, credential.StatusVerified, c.Status, c.StatusReason)
	require.True(t, c.Verification.Assumed)
	require.Contains(t, c.Verification.Identity, membertest.Account)
	require.Len(t, c.Verification.Groups, len(member.Groups))
	for _, g := range c.Verification.Groups {
		require.True(t, g.OK, "group %s: missing %v", g.Name, g.Missing)
	}
	require.Empty(t, c.Setup)

	// GET shows the External ID again; the listing has both.
	res = f.Do(t, http.MethodGet, "/credentials/"+c.ID, nil)
	require.Equal(t, http.StatusOK, res.Status)
	var got credential.Credential
	res.JSON(t, &got)
	require.Equal(t, c.ExternalID, got.ExternalID)
	require.Equal(t, credential.StatusVerified, got.Status)
	res = f.Do(t, http.MethodGet, "/credentials?limit=10", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Contains(t, string(res.Body), c.ID)
	require.Contains(t, string(res.Body), other.ID)

	// The CE is created in the member account, through the role.
	_, err := s3.NewFromConfig(testenv.InAccount(f.Endpoint, membertest.Account), func(o *s3.Options) { o.UsePathStyle = true }).
		CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(workBucket)})
	require.NoError(t, err)
	res = f.Do(t, http.MethodPost, "/compute-envs", cloudCE("member-ce", c.ID))
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	require.Equal(t, c.ID, ce.CredentialsID)
	// The api handed the forging to the reconciler, which has run.
	res = f.Do(t, http.MethodGet, "/compute-envs/"+ce.ID, nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	res.JSON(t, &ce)
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	role := ce.Resource("iam-role")
	require.NotNil(t, role)
	require.Contains(t, role.ARN, ":"+membertest.Account+":", "the CE's instance role is forged in the member account")
	_, err = iam.NewFromConfig(testenv.InAccount(f.Endpoint, membertest.Account)).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(role.Name)})
	require.NoError(t, err)
	require.Equal(t, c.ExternalID, f.proxy.Assumed()[memberRole(membertest.Account)])

	// In use: refused; once the CE is deleted, the credentials go.
	res = f.Do(t, http.MethodDelete, "/credentials/"+c.ID, nil)
	require.Equal(t, http.StatusConflict, res.Status, string(res.Body))
	code, _, _ = res.Error(t)
	require.Equal(t, "credentials_in_use", code)
	res = f.Do(t, http.MethodDelete, "/compute-envs/"+ce.ID, nil)
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	require.NoError(t, f.Reconciler.ComputeEnvs.Advance(ctx, ce.ID))
	gotCE, err := f.API.ComputeEnvs.Get(ctx, ce.ID)
	require.NoError(t, err)
	require.Equal(t, computeenv.StatusDeleted, gotCE.Status, gotCE.StatusReason)
	res = f.Do(t, http.MethodDelete, "/credentials/"+c.ID, nil)
	require.Equal(t, http.StatusNoContent, res.Status, string(res.Body))
	res = f.Do(t, http.MethodGet, "/credentials/"+c.ID, nil)
	require.Equal(t, http.StatusNotFound, res.Status)

	// Deleted: the role can no longer be assumed, even with a fresh client.
	f.proxy.Reset()
	cfg := f.API.AWS.ForRole(testenv.Region, awsclient.Credentials{RoleARN: c.RoleARN, ExternalID: c.ExternalID})
	_, err = sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err == nil {
		// A session obtained before the delete may still be cached by this
		// process (until it expires); a new process asks the registry.
		fresh, ferr := awsclient.New(ctx, testenv.Options(f.proxy.URL, nil))
		require.NoError(t, ferr)
		fresh.UseRegistry(f.API.Credentials.Registered)
		_, err = sts.NewFromConfig(fresh.ForRole(testenv.Region, awsclient.Credentials{RoleARN: c.RoleARN, ExternalID: c.ExternalID})).
			GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	}
	require.ErrorIs(t, err, credential.ErrNotRegistered)
	require.Empty(t, f.proxy.Calls(), "no AssumeRole of deleted credentials")
}

// A role that lacks a permission group is reported by group, with the
// actions it misses, and stays UNVERIFIED.
func TestVerificationReportsMissingGroups(t *testing.T) {
	f := newFixture(t)
	c := f.register(t, "partial", memberRole(membertest.Account))
	membertest.Seed(t, f.Endpoint, membertest.Account, prefix, c.ExternalID, "sweep", "logs")
	c = f.verify(t, c.ID)
	require.Equal(t, credential.StatusUnverified, c.Status)
	require.True(t, c.Verification.Assumed)
	require.Contains(t, c.StatusReason, "sweep")
	require.Contains(t, c.StatusReason, "logs")
	byName := map[string]credential.GroupCheck{}
	for _, g := range c.Verification.Groups {
		byName[g.Name] = g
	}
	require.Len(t, byName, len(member.Groups))
	for _, g := range member.Groups {
		got := byName[g.Name]
		if g.Name == "sweep" || g.Name == "logs" {
			require.False(t, got.OK, g.Name)
			require.ElementsMatch(t, g.Actions, got.Missing, g.Name)
			continue
		}
		require.True(t, got.OK, "%s: %v", g.Name, got.Missing)
	}
	res := f.Do(t, http.MethodPost, "/compute-envs", cloudCE("partial-ce", c.ID))
	require.Equal(t, http.StatusConflict, res.Status, string(res.Body))
}

// The role can be assumed with the External ID ceforge generated only: a
// caller cannot choose one, a role that trusts another External ID fails
// verification, and the client factory assumes nothing unregistered.
func TestAssumeOnlyWithTheGeneratedExternalID(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	role := memberRole(membertest.Account)

	for _, tc := range []struct {
		name, field, code, says string
		body                    map[string]any
	}{
		{"external id", "externalId", "external_id_generated", "ceforge generates the External ID",
			map[string]any{"name": "x", "roleArn": role, "externalId": "chosen-by-me"}},
		{"access keys", "accessKeyId", "access_keys_refused", "stores no long-lived secret",
			map[string]any{"name": "x", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}},
		{"secret key alone", "secretAccessKey", "access_keys_refused", "member stack",
			map[string]any{"name": "x", "roleArn": role, "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}},
		{"role outside the prefix", "roleArn", "invalid_field", "must start with",
			map[string]any{"name": "x", "roleArn": "arn:aws:iam::" + membertest.Account + ":role/admin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := f.Do(t, http.MethodPost, "/credentials", tc.body)
			require.Equal(t, http.StatusBadRequest, res.Status, string(res.Body))
			code, field, msg := res.Error(t)
			require.Equal(t, tc.code, code)
			require.Equal(t, tc.field, field)
			require.Contains(t, msg, tc.says)
			require.NotContains(t, string(res.Body), "wJalrXUtnFEMI", "a refused key is never echoed")
		})
	}
	res := f.Do(t, http.MethodGet, "/credentials", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.JSONEq(t, `{"items":[]}`, string(res.Body), "refused requests record nothing")

	// The member role trusts an External ID someone chose: ceforge's own
	// one does not match, so it cannot be verified.
	membertest.Seed(t, f.Endpoint, membertest.Account, prefix, prefix+"0000000000000000000000000000000000000000")
	c := f.register(t, "guessed", role)
	require.Equal(t, credential.StatusUnverified, c.Status)
	require.False(t, c.Verification.Assumed)
	for _, call := range f.proxy.Calls() {
		require.Equal(t, c.ExternalID, call.ExternalID, "ceforge only ever presents the External ID it generated")
		require.False(t, call.Allowed)
	}

	// The factory itself assumes no role that no credentials hold, even
	// one whose trust policy would let it.
	f.proxy.Reset()
	cfg := f.API.AWS.ForRole(testenv.Region, awsclient.Credentials{RoleARN: role, ExternalID: prefix + "0000000000000000000000000000000000000000"})
	_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.ErrorIs(t, err, credential.ErrNotRegistered)
	require.Empty(t, f.proxy.Calls(), "refused before any AssumeRole")
	require.True(t, strings.HasPrefix(c.ExternalID, prefix))
}
