package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := now.Add(d); return &t }

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./internal/cli -run Golden -update to create it")
	require.Equal(t, string(want), got)
}

func int64p(v int64) *int64 { return &v }
func intp(v int) *int       { return &v }

var fixtureRuns = []runRec{
	{ID: "k2m9x4q7w1z8c3", RunName: "rnaseq-test", Kind: "pipeline", ComputeEnvID: "a1b2c3d4e5f6g7", Platform: "aws-batch", Pipeline: "nf-core/rnaseq", Revision: "3.14.0",
		WorkDir: "s3://bucket/work", Status: "SUCCEEDED", Timeline: timeline{Submitted: at(-10 * time.Minute), Running: at(-9*time.Minute - 15*time.Second), Completed: at(-2 * time.Minute)},
		TimeToRunningMs: int64p(45200), ExitCode: intp(0), Progress: &counters{Succeeded: 5}, Backend: &backend{Type: "batch-job", JobID: "4c7e6a51-2b8d-4f0e-9a3c-6d1f2e8b7a90"},
		CreatedAt: now.Add(-10 * time.Minute), CreatedBy: "arn:aws:iam::123456789012:user/alice", Labels: labelsType{"team": "genomics"}},
	{ID: "p0q1r2s3t4u5v6", RunName: "jupyter", Kind: "studio", ComputeEnvID: "b2c3d4e5f6g7h8", Platform: "aws-cloud", Studio: &studio{Image: "jupyter/base-notebook:2024-10-07", Port: 8888},
		Status: "RUNNING", Timeline: timeline{Submitted: at(-3 * time.Hour), Running: at(-3*time.Hour + 40*time.Second)}, TimeToRunningMs: int64p(40000),
		Backend: &backend{Type: "ec2-instance", InstanceID: "i-0abcd1234ef567890", Region: "eu-west-1"},
		Connect: &connect{Method: "ssm-port-forwarding", InstanceID: "i-0abcd1234ef567890", Region: "eu-west-1", Port: 8888, Document: portForwardDocument,
			Command: `aws ssm start-session --region eu-west-1 --target i-0abcd1234ef567890 --document-name AWS-StartPortForwardingSession --parameters '{"portNumber":["8888"],"localPortNumber":["8888"]}'`},
		CreatedAt: now.Add(-3 * time.Hour)},
	{ID: "z9y8x7w6v5u4t3", RunName: "sarek-1", Kind: "pipeline", ComputeEnvID: "a1b2c3d4e5f6g7", Pipeline: "nf-core/sarek", Status: "FAILED",
		StatusReason: "nextflow exited with code 1", ExitCode: intp(1), CreatedAt: now.Add(-50 * time.Hour)},
}

func render(f func(p *printer, b *bytes.Buffer)) string {
	var b bytes.Buffer
	f(&printer{out: &b, format: formatTable, now: func() time.Time { return now }}, &b)
	return b.String()
}

func TestGoldenTables(t *testing.T) {
	ces := []computeEnv{
		{ID: "a1b2c3d4e5f6g7", Name: "rnaseq-spot", Platform: "aws-batch", ConfigMode: "forge", Region: "eu-west-1", WorkDir: "s3://bucket/work", Status: "AVAILABLE",
			CreatedAt: now.Add(-26 * time.Hour), CreatedBy: "arn:aws:iam::123456789012:user/alice", Warnings: []string{"no security groups given: the VPC's default is used"},
			ForgedResources: []resource{{Type: "iam-role", Name: "ceforge-a1b2c3d4e5f6g7-service", State: "CREATED"}, {Type: "batch-job-queue", Name: "ceforge-a1b2c3d4e5f6g7-head", State: "VALID"}}},
		{ID: "b2c3d4e5f6g7h8", Name: "studios", Platform: "aws-cloud", Region: "us-east-1", Status: "CREATING", CreatedAt: now.Add(-5 * time.Second)},
	}
	golden(t, "ce-list", render(func(p *printer, b *bytes.Buffer) { p.ceTable(b, ces) }))
	golden(t, "ce-get", render(func(p *printer, b *bytes.Buffer) { p.ceDetail(b, ces[0]) }))
	golden(t, "run-list", render(func(p *printer, b *bytes.Buffer) { p.runTable(b, fixtureRuns) }))
	golden(t, "run-get", render(func(p *printer, b *bytes.Buffer) { p.runDetail(b, fixtureRuns[0]) }))
	golden(t, "run-get-studio", render(func(p *printer, b *bytes.Buffer) { p.runDetail(b, fixtureRuns[1]) }))
	var d dryRun
	require.NoError(t, json.Unmarshal([]byte(`{"computeEnv":{"name":"demo","platform":"aws-cloud","region":"us-east-1","warnings":["w1"]},
		"plan":{"resources":[{"action":"create","type":"iam-role","name":"ceforge-x-instance"},{"action":"use","type":"ec2-image","name":"ami-0abc"}]}}`), &d))
	golden(t, "ce-plan", render(func(p *printer, b *bytes.Buffer) { p.planTable(b, d) }))
	sw := sweepReport{ID: "s1t2u3v4w5x6y7", Status: "SUCCEEDED", Trigger: "api", CreatedAt: now.Add(-time.Minute), FinishedAt: at(-30 * time.Second),
		Volumes: sweepCount{Examined: 12, Eligible: 3, Deleted: 3, Skipped: 1}, Instances: sweepCount{Examined: 4}, GiBFreed: 300, DollarsPerMonthSaved: 24}
	sw.Skipped = append(sw.Skipped, struct {
		Kind   string `json:"kind"`
		Reason string `json:"reason"`
		Count  int    `json:"count"`
	}{"volume", "in_use", 1})
	golden(t, "sweep-get", render(func(p *printer, b *bytes.Buffer) { p.sweepDetail(b, sw) }))
	golden(t, "sweep-list", render(func(p *printer, b *bytes.Buffer) {
		p.sweepTable(b, []sweepReport{sw, {ID: "d1", Status: "RUNNING", Trigger: "schedule", DryRun: true, CreatedAt: now}})
	}))
}

func TestGoldenWatchView(t *testing.T) {
	running := fixtureRuns[0]
	running.Status, running.ExitCode, running.Timeline.Completed = "RUNNING", nil, nil
	running.Progress = &counters{Submitted: 1, Running: 2, Succeeded: 6, Failed: 1}
	st := watchState{run: running, progress: &progressView{Processes: []processProgress{
		{Process: "FASTQC", Succeeded: 4},
		{Process: "STAR_ALIGN", Running: 2, Succeeded: 2, Failed: 1, Pending: 1},
		{Process: "MULTIQC", Pending: 1},
	}}, failures: []string{"task STAR_ALIGN (sample3) failed (exit 137): OutOfMemoryError"}}
	golden(t, "watch-running", strings.Join(watchView(st, now, 100), "\n")+"\n")
	golden(t, "watch-ended", strings.Join(watchView(watchState{run: fixtureRuns[0]}, now, 100), "\n")+"\n")
	golden(t, "watch-studio", strings.Join(watchView(watchState{run: fixtureRuns[1]}, now, 100), "\n")+"\n")
}
