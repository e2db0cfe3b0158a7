package batchce

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/run"
)

// Where a studio's job runs is recorded from what the reconciler reads
// (DescribeJobs) as from events: for studios only, for the recorded head
// only, for container instance ARNs only; a move forgets the host found.
func TestStudioHostRecorded(t *testing.T) {
	const ci = "arn:aws:ecs:us-east-1:123456789012:container-instance/ceforge-x-head_Batch_3f1e/8d2c4b6a0e9f4a1b"
	const ci2 = "arn:aws:ecs:us-east-1:123456789012:container-instance/ceforge-x-head_Batch_3f1e/99"
	o := observationOf("r1", btypes.JobDetail{JobId: aws.String("j1"), Status: btypes.JobStatusRunning, StartedAt: aws.Int64(time.Now().UnixMilli()),
		Container: &btypes.ContainerDetail{ContainerInstanceArn: aws.String(ci)}}, time.Now())
	require.Equal(t, ci, o.ContainerInstance)

	rec := func(kind string, b *run.Backend) *runRecord {
		return &runRecord{Run: run.Run{ID: "r1", Kind: kind, Status: run.StatusRunning, Backend: b}}
	}
	batchJob := func(ci, host string) *run.Backend {
		return &run.Backend{Type: run.BackendBatch, JobID: "j1", ContainerInstanceARN: ci, HostInstanceID: host}
	}
	on := func(job, ci string) []Observation {
		return []Observation{{RunID: "r1", Head: true, JobID: job, Status: "RUNNING", ContainerInstance: ci, At: time.Now()}}
	}
	for _, c := range []struct {
		name string
		rec  *runRecord
		obs  []Observation
		want map[string]any
	}{
		{"studio", rec(run.KindStudio, batchJob("", "")), on("j1", ci), map[string]any{"backend.containerInstanceArn": ci}},
		{"studio moved", rec(run.KindStudio, batchJob(ci, "i-1")), on("j1", ci2), map[string]any{"backend.containerInstanceArn": ci2, "backend.hostInstanceId": nil}},
		{"same container instance", rec(run.KindStudio, batchJob(ci, "i-1")), on("j1", ci), map[string]any{}},
		{"pipeline", rec(run.KindPipeline, batchJob("", "")), on("j1", ci), map[string]any{}},
		{"another job", rec(run.KindStudio, batchJob("", "")), on("j2", ci), map[string]any{}},
		{"no backend yet", rec(run.KindStudio, nil), on("j1", ci), map[string]any{}},
		{"not an ARN", rec(run.KindStudio, batchJob("", "")), on("j1", "TBD"), map[string]any{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, planChange(c.rec, c.obs).Set)
		})
	}
}
