package batchce_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	etypes "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge/hostinit"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/sweep"
)

// A manual CE whose queues their owner disables or deletes becomes INVALID
// with the reason at the next reconcile pass (runs are refused meanwhile),
// and AVAILABLE again once the queues are back; the sweeper skips a
// deleted queue instead of failing every sweep on it.
func TestManualCEQueueDrift(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	headQ, workQ := manualQueues(t, h, btypes.JQStateEnabled)
	ce := createCE(t, h, computeenv.CreateRequest{Name: "drift", Platform: computeenv.PlatformBatch, Region: region,
		WorkDir: "s3://" + bucket + "/work", Batch: &computeenv.BatchOptions{HeadQueue: headQ, ComputeQueue: workQ}})
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	b := batch.NewFromConfig(h.AWS.Config(region))
	status := func() computeenv.ComputeEnv {
		t.Helper()
		require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
		got, err := h.Reconciler.ComputeEnvs.Get(ctx, ce.ID)
		require.NoError(t, err)
		return *got
	}
	require.Equal(t, computeenv.StatusAvailable, status().Status, "nothing drifted")

	_, err := b.UpdateJobQueue(ctx, &batch.UpdateJobQueueInput{JobQueue: aws.String(workQ), State: btypes.JQStateDisabled})
	require.NoError(t, err)
	got := status()
	require.Equal(t, computeenv.StatusInvalid, got.Status)
	require.Equal(t, `compute job queue "my-work" is DISABLED`, got.StatusReason)
	res := h.Do(t, "POST", "/runs", run.LaunchRequest{Kind: run.KindPipeline, LaunchSettings: run.LaunchSettings{ComputeEnvID: ce.ID, Pipeline: "nf-core/rnaseq"}})
	require.Equal(t, 409, res.Status, string(res.Body))

	_, err = b.UpdateJobQueue(ctx, &batch.UpdateJobQueueInput{JobQueue: aws.String(workQ), State: btypes.JQStateEnabled})
	require.NoError(t, err)
	got = status()
	require.Equal(t, computeenv.StatusAvailable, got.Status, got.StatusReason)
	require.Empty(t, got.StatusReason)

	_, err = b.DeleteJobQueue(ctx, &batch.DeleteJobQueueInput{JobQueue: aws.String(headQ)})
	require.NoError(t, err)
	got = status()
	require.Equal(t, computeenv.StatusInvalid, got.Status)
	require.Equal(t, `head job queue "my-head" no longer exists`, got.StatusReason)
	again := status()
	require.Equal(t, got.Version, again.Version, "an unchanged drift writes nothing")

	rep, err := h.Sweeper.Sweeper().Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, rep.Status, rep.Errors)
	var skipped []string
	for _, s := range rep.Skipped {
		if s.Reason == sweep.ReasonQueueGone {
			skipped = s.Sample
		}
	}
	require.Equal(t, []string{headQ}, skipped)
}

// EBS auto-scale: the CE warns at creation that hosts install the daemon
// at boot; a host whose setup failed (it tags itself, hostinit) shows in
// the CE's warnings at the next reconcile pass, until it is gone.
func TestForgeHostSetupFailureWarns(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ce := createCE(t, h, forgeBody("autoscale", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EbsAutoScale = true }))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	require.Len(t, ce.Warnings, 1)
	require.Contains(t, ce.Warnings[0], "batch.forge.ebsAutoScale: compute hosts download amazon-ebs-autoscale")
	require.Equal(t, 50, ce.Batch.Forge.EbsBlockSize, "the default block size")

	e := ec2.NewFromConfig(h.AWS.Config(region))
	host := func(setup string) string {
		tg := []etypes.Tag{{Key: aws.String("ceforge:ce-id"), Value: aws.String(ce.ID)}, {Key: aws.String("ceforge:managed"), Value: aws.String("true")}}
		if setup != "" {
			tg = append(tg, etypes.Tag{Key: aws.String(hostinit.SetupTag), Value: aws.String(setup)})
		}
		out, err := e.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-12c6146b"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			TagSpecifications: []etypes.TagSpecification{{ResourceType: etypes.ResourceTypeInstance, Tags: tg}}})
		require.NoError(t, err)
		return aws.ToString(out.Instances[0].InstanceId)
	}
	host("")
	bad := host("failed:ebs-autoscale")
	warnings := func() []string {
		t.Helper()
		require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
		got, err := h.Reconciler.ComputeEnvs.Get(ctx, ce.ID)
		require.NoError(t, err)
		require.Equal(t, computeenv.StatusAvailable, got.Status, "a failed host is a warning, not drift")
		return got.Warnings
	}
	w := warnings()
	require.Len(t, w, 2)
	require.Equal(t, "compute hosts: 1 running instance(s) failed their setup: "+bad+" (failed:ebs-autoscale); see /var/log/ceforge-host.log on the instance", w[1])
	require.Equal(t, w, warnings(), "stable while the host runs")

	_, err := e.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{bad}})
	require.NoError(t, err)
	w = warnings()
	require.Len(t, w, 1, "gone with the host")
}
