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
	relaunched := fixtureRuns[0]
	relaunched.ID, relaunched.RelaunchOf, relaunched.ResumeSessionID = "r3l4u5n6c7h8e9", fixtureRuns[0].ID, "5b6f0c1e-aaaa-bbbb-cccc-000000000001"
	relaunched.Trace, relaunched.MaxCostUSD = &traceInfo{Enabled: true}, func() *float64 { v := 20.0; return &v }()
	golden(t, "run-get-relaunched", render(func(p *printer, b *bytes.Buffer) { p.runDetail(b, relaunched) }))
	var pv runProgress
	require.NoError(t, json.Unmarshal([]byte(`{"runId":"k2m9x4q7w1z8c3","status":"FAILED","reporting":true,"phase":"completed","stale":false,
		"lastUpdate":"2026-11-23T11:58:00Z","counts":{"pending":0,"submitted":0,"running":0,"succeeded":3,"failed":1,"cached":2,"ignored":0,"retries":1,"aborted":0},
		"processes":[{"index":1,"name":"FASTQC","pending":0,"submitted":0,"running":0,"succeeded":0,"failed":0,"cached":2},
		{"index":2,"name":"ALIGN","pending":0,"submitted":0,"running":0,"succeeded":1,"failed":1,"cached":0}],
		"cost":{"tasksUsd":0.4812,"headUsd":0.05,"totalUsd":0.5312,"pricedTasks":4,"unpricedTasks":0,"priceTable":"2026-05-01"},
		"workflow":{"sessionId":"5b6f0c1e-aaaa-bbbb-cccc-000000000001","nextflowVersion":"24.10.5","resume":true,"success":false,"exitStatus":1,
		"errorMessage":"Process `+"`ALIGN (2)`"+` terminated with an error exit status (1)\nmore"}}`), &pv))
	golden(t, "run-progress", render(func(p *printer, b *bytes.Buffer) { p.progressDetail(b, pv) }))
	golden(t, "run-progress-off", render(func(p *printer, b *bytes.Buffer) {
		p.progressDetail(b, runProgress{RunID: "k2m9x4q7w1z8c3", Status: "RUNNING", ReportingReason: "turned off for this run (traceEnabled: false)"})
	}))
	var tp page[task]
	require.NoError(t, json.Unmarshal([]byte(`{"items":[
		{"runId":"k2m9x4q7w1z8c3","taskId":1,"status":"CACHED","process":"FASTQC","name":"FASTQC (1)","hash":"0a/1b2c3d","attempt":1,"exit":0},
		{"runId":"k2m9x4q7w1z8c3","taskId":3,"status":"FAILED","process":"ALIGN","name":"ALIGN (2)","hash":"2c/3d4e5f","nativeId":"4c7e6a51","attempt":2,"exit":1,
		 "errorAction":"TERMINATE","durationMs":1860000,"machineType":"m6i.xlarge","priceModel":"spot","costUsd":0.0288},
		{"runId":"k2m9x4q7w1z8c3","taskId":4,"status":"RUNNING","process":"ALIGN","name":"ALIGN (3)","hash":"3d/4e5f6a","nativeId":"28004","attempt":1}]}`), &tp))
	golden(t, "run-tasks", render(func(p *printer, b *bytes.Buffer) { p.taskTable(b, tp.Items) }))
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
	maxCost := 25.0
	st := watchState{run: running, progress: &runProgress{RunID: running.ID, Reporting: true, Phase: "running",
		Counts: progressCounts{Pending: 1, Running: 2, Succeeded: 6, Failed: 1},
		Cost:   runCost{TasksUSD: 1.25, HeadUSD: 0.1, TotalUSD: 1.35, MaxCostUSD: &maxCost},
		Processes: []processProgress{
			{Name: "FASTQC", progressCounts: progressCounts{Succeeded: 4}},
			{Name: "STAR_ALIGN", progressCounts: progressCounts{Running: 2, Succeeded: 2, Failed: 1, Pending: 1}},
			{Name: "MULTIQC", progressCounts: progressCounts{Pending: 1}},
		}}, failures: []string{failureLine(task{TaskID: 7, Name: "STAR_ALIGN (sample3)", Exit: intp(137), Attempt: 2, ErrorAction: "TERMINATE", Workdir: "s3://bucket/work/3f/9a12bc"})}}
	golden(t, "watch-running", strings.Join(watchView(st, now, 100), "\n")+"\n")
	golden(t, "watch-ended", strings.Join(watchView(watchState{run: fixtureRuns[0]}, now, 100), "\n")+"\n")
	golden(t, "watch-studio", strings.Join(watchView(watchState{run: fixtureRuns[1]}, now, 100), "\n")+"\n")
}
