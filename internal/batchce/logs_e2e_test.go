package batchce_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/shellstub"
)

// A Batch run's nextflow.log reaches GET /runs/{id}/logs/download: the head
// job is run as AWS Batch would run it (its command and environment as
// DescribeJobs reports them) against a stub nextflow, its `aws s3 cp`
// goes through the real SDK to the emulator, and the API redirects to the
// uploaded log.
func TestBatchHeadLogDownload(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ce := createCE(t, h, forgeBody("logs"))
	r := launch(t, h, ce.ID)

	out, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{r.Backend.JobID}})
	require.NoError(t, err)
	c := out.Jobs[0].Container
	require.Len(t, c.Command, 3)
	require.Equal(t, []string{"bash", "-c"}, c.Command[:2])
	var env []string
	for _, kv := range c.Environment {
		env = append(env, aws.ToString(kv.Name)+"="+aws.ToString(kv.Value))
	}

	s := shellstub.New(t)
	s.AWSCLI(h.Endpoint, region)
	const nfLog = "Jan-01 00:00:00.000 [main] DEBUG nextflow.cli.Launcher - $> nextflow run nf-core/rnaseq\n"
	s.Stub("nextflow", `printf '%s' '`+nfLog+`' > .nextflow.log; exit 0`)
	res := s.Run(strings.ReplaceAll(c.Command[2], "/tmp/ceforge", s.Path("launch")), env...)
	require.Equal(t, 0, res.ExitCode, res.Output)
	require.Contains(t, res.Output, "uploaded nextflow.log")

	// The emulator ends the job SUCCEEDED; the reconciler records it.
	require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	require.Equal(t, run.StatusSucceeded, getRun(t, h, r.ID).Status)

	dl := h.Do(t, "GET", "/runs/"+r.ID+"/logs/download", nil)
	require.Contains(t, []int{http.StatusTemporaryRedirect, http.StatusFound}, dl.Status, string(dl.Body))
	got, err := http.Get(dl.Header.Get("Location"))
	require.NoError(t, err)
	defer got.Body.Close()
	require.Equal(t, 200, got.StatusCode)
	body, err := io.ReadAll(got.Body)
	require.NoError(t, err)
	require.Equal(t, nfLog, string(body))
}
