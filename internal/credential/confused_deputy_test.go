package credential_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/membertest"
)

// The confused deputy: customer B's role trusts this control plane with
// an External ID that B agreed elsewhere (another deployment, another
// tool). A caller of this API who learns B's role ARN and External ID must
// not be able to make ceforge act with B's role: not by naming them on a
// compute environment, not by registering them, not by registering the
// role alone (ceforge then presents its own External ID, which B's trust
// policy refuses).
func TestConfusedDeputy(t *testing.T) {
	f := newFixture(t)
	const accountB = "333344445555"
	externalIDB := "ceforge-b-agreed-elsewhere-7f3a9c"
	roleB := membertest.Seed(t, f.Endpoint, accountB, prefix, externalIDB)
	// B's account has what a compute environment needs: only the
	// credentials can stop the attempt.
	_, err := s3.NewFromConfig(testenv.InAccount(f.Endpoint, accountB), func(o *s3.Options) { o.UsePathStyle = true }).
		CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(workBucket)})
	require.NoError(t, err)

	// 1. Named directly on a compute environment.
	res := f.Do(t, http.MethodPost, "/compute-envs", map[string]any{
		"name": "borrowed", "platform": "aws-cloud", "region": "us-east-1", "workDir": "s3://" + workBucket + "/work",
		"credentials": map[string]any{"roleArn": roleB, "externalId": externalIDB},
	})
	require.Equal(t, http.StatusBadRequest, res.Status, "a compute environment must not take a caller's role and External ID: %s", res.Body)
	require.Empty(t, f.proxy.Calls(), "no AssumeRole may follow a caller's role and External ID")
	require.NotContains(t, f.proxy.Assumed(), roleB)

	// 2. Registered with the External ID.
	res = f.Do(t, http.MethodPost, "/credentials", map[string]any{"name": "borrowed", "roleArn": roleB, "externalId": externalIDB})
	require.Equal(t, http.StatusBadRequest, res.Status, string(res.Body))
	require.Empty(t, f.proxy.Calls())

	// 3. Registered without: ceforge's own External ID is refused by B's
	// trust policy, and a compute environment cannot use the credentials.
	res = f.Do(t, http.MethodPost, "/credentials", map[string]any{"name": "borrowed", "roleArn": roleB})
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var c struct{ ID, Status, ExternalID string }
	res.JSON(t, &c)
	require.Equal(t, "UNVERIFIED", c.Status)
	require.NotEqual(t, externalIDB, c.ExternalID)
	res = f.Do(t, http.MethodPost, "/compute-envs", map[string]any{
		"name": "borrowed", "platform": "aws-cloud", "region": "us-east-1", "workDir": "s3://" + workBucket + "/work", "credentialsId": c.ID,
	})
	require.Equal(t, http.StatusConflict, res.Status, string(res.Body))

	for _, call := range f.proxy.Calls() {
		require.NotEqual(t, externalIDB, call.ExternalID, "B's External ID was presented")
		require.False(t, call.Allowed, "B's role was assumed: %+v", call)
	}
	require.NotContains(t, f.proxy.Assumed(), roleB)
}
