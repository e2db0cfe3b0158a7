package trace_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// nf describes what one Nextflow line sends (see the protocol notes in the
// README): which auth form its token gets, its Content-Type, and the
// fields each body gains from that line on.
type nf struct {
	version     string
	contentType string
	// bearer: the form Nextflow picks for a JWT or a Seqera token; ceforge
	// tokens are opaque, so Nextflow sends Basic. Both are replayed.
	bearer bool
	// workspace: a ?workspaceId= query on every call.
	workspace bool
}

var lines = []nf{
	{version: "23.04.0", contentType: "application/json"},
	{version: "24.10.5", contentType: "application/json", bearer: true},
	{version: "25.10.0", contentType: "application/json; charset=utf-8", workspace: true},
	{version: "26.04.1", contentType: "application/json; charset=utf-8", bearer: true},
}

func (v nf) atLeast(version string) bool { return v.version >= version }

func (v nf) auth(token string) string {
	if v.bearer {
		return "Bearer " + token
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("@token:"+token))
}

func (v nf) path(p string) string {
	if v.workspace {
		return p + "?workspaceId=1234567890"
	}
	return p
}

// javaTime formats t as Java's OffsetDateTime.toString does: seconds and
// fractions left out when zero, an offset or Z.
func javaTime(t time.Time) string {
	t = t.In(time.FixedZone("CET", 3600))
	s := t.Format("2006-01-02T15:04")
	if t.Second() != 0 || t.Nanosecond() != 0 {
		s += t.Format(":05")
		if ms := t.Nanosecond() / 1e6; ms != 0 {
			s += fmt.Sprintf(".%03d", ms)
		}
	}
	return s + "+01:00"
}

func (v nf) createBody(runID, session string, at time.Time) map[string]any {
	return map[string]any{
		"sessionId": session, "runName": "tiny_turing", "projectName": "nf-core/rnaseq",
		"repository": "https://github.com/nf-core/rnaseq", "workflowId": runID, "instant": at.UnixMilli(),
	}
}

func (v nf) workflow(runID, session string, start time.Time) map[string]any {
	w := map[string]any{
		"id": runID, "runName": "tiny_turing", "sessionId": session, "scriptId": "0b1c", "scriptFile": "/work/main.nf",
		"scriptName": "main.nf", "repository": "https://github.com/nf-core/rnaseq", "commitId": "a9012339ce857d6ec7a078281813d8a93645a3e7",
		"revision": "3.14.0", "projectDir": "/root/.nextflow/assets/nf-core/rnaseq", "projectName": "nf-core/rnaseq",
		"start": javaTime(start), "complete": nil, "duration": nil, "container": nil, "containerEngine": "docker",
		"commandLine": "nextflow run nf-core/rnaseq -r 3.14.0 -with-tower http://ceforge", "success": false,
		"exitStatus": nil, "errorMessage": nil, "errorReport": nil, "launchDir": "/var/lib/ceforge", "workDir": "s3://work/w",
		"homeDir": "/root", "userName": "root", "profile": "test", "resume": false, "stubRun": false,
		"configFiles": []string{"/var/lib/ceforge/ceforge.config"},
		"nextflow":    map[string]any{"version": v.version, "build": 5927, "timestamp": "2024-10-01T10:00:00Z", "enable": map[string]any{"dsl": 2}},
		"manifest":    map[string]any{"name": "nf-core/rnaseq", "defaultBranch": "master", "mainScript": "main.nf", "gitmodules": nil},
		"params":      map[string]any{"outdir": "s3://work/out", "genome": "GRCh38", "skip": []any{1, "x"}},
		"configText":  "process.executor = 'awsbatch'\n",
		"operationId": nil, "logFile": nil, "outFile": nil,
	}
	if v.atLeast("24.04") {
		w["preview"] = false
		w["wave"] = map[string]any{"enabled": true}
		w["fusion"] = map[string]any{"enabled": false, "version": nil}
	}
	if v.atLeast("24.10") {
		w["outputDir"] = "/var/lib/ceforge/results"
		w["failOnIgnore"] = false
	}
	if v.atLeast("26.04") {
		w["platform"] = map[string]any{"name": "ceforge"}
	}
	return w
}

func (v nf) beginBody(runID, session string, start time.Time) map[string]any {
	b := map[string]any{
		"workflow": v.workflow(runID, session, start), "processNames": []string{"FASTQC", "ALIGN"},
		"towerLaunch": true, "instant": start.UnixMilli(),
	}
	return b
}

// task is one task record at a status, as TraceRecord.toMap() gives it.
func (v nf) task(id int, status string, submit time.Time) map[string]any {
	process := "FASTQC"
	if id%2 == 0 {
		process = "ALIGN"
	}
	t := map[string]any{
		"taskId": id, "status": status, "hash": fmt.Sprintf("%02x/%06x", id%256, id), "name": fmt.Sprintf("%s (%d)", process, id),
		"process": process, "tag": nil, "module": []string{}, "container": "quay.io/biocontainers/fastqc:0.12.1",
		"attempt": 1, "exit": 2147483647, "submit": javaTime(submit), "start": nil, "complete": nil,
		"workdir": fmt.Sprintf("s3://work/w/%02x/%06x", id%256, id), "script": "fastqc " + strings.Repeat("x", 200),
		"scratch": nil, "env": nil, "queue": "ceforge-work", "cpus": 2, "memory": 4 << 30, "disk": nil, "time": 3600000,
		"nativeId": nil, "executor": "awsbatch", "machineType": nil, "cloudZone": nil, "priceModel": nil, "errorAction": nil,
	}
	if v.atLeast("26.04") {
		t["numSpotInterruptions"] = 0
		t["accelerator"] = nil
		t["acceleratorType"] = nil
		t["logStreamId"] = nil
		t["resourceAllocation"] = map[string]any{"cpuShares": 2048, "memoryMiB": 4096, "time": 3600000}
		t["gpuMetrics"] = nil
	}
	switch status {
	case "RUNNING", "COMPLETED", "FAILED":
		t["start"] = javaTime(submit.Add(20 * time.Second))
		// A job id for Batch; older lines' local executor sends a PID.
		if v.atLeast("24.10") {
			t["nativeId"] = fmt.Sprintf("4f1a-%d", id)
		} else {
			t["nativeId"] = 28000 + id
		}
		t["machineType"], t["cloudZone"], t["priceModel"] = "m6i.xlarge", "us-east-1a", "standard"
		if id%3 == 0 {
			t["priceModel"] = "spot"
		}
	}
	if status == "COMPLETED" || status == "FAILED" {
		exit := 0
		if status == "FAILED" {
			exit, t["errorAction"] = 1, "TERMINATE"
		}
		end := submit.Add(20*time.Second + 30*time.Minute)
		t["exit"], t["complete"] = exit, javaTime(end)
		t["duration"], t["realtime"] = int64(end.Sub(submit)/time.Millisecond), int64(30*time.Minute/time.Millisecond)
		t["pcpu"], t["pmem"], t["rss"], t["vmem"], t["peakRss"], t["peakVmem"] = 180.5, 3.2, 1<<30, 2<<30, 1<<30+512, 2<<30
		t["rchar"], t["wchar"], t["readBytes"], t["writeBytes"], t["syscr"], t["syscw"] = 89020, 196, 4096, 0, 140, 13
		t["volCtxt"], t["invCtxt"] = 5, 2
	}
	return t
}

func progressCounts(pending, submitted, running, succeeded, failed int) map[string]any {
	return map[string]any{
		"pending": pending, "submitted": submitted, "running": running, "succeeded": succeeded, "failed": failed,
		"cached": 0, "ignored": 0, "retries": 0, "aborted": 0, "loadCpus": 2 * running, "loadMemory": int64(running) * (4 << 30),
		"peakRunning": running, "peakCpus": 2 * running, "peakMemory": int64(running) * (4 << 30),
		"processes": []map[string]any{
			{"index": 1, "name": "FASTQC", "workDir": nil, "pending": 0, "submitted": submitted, "running": running, "succeeded": succeeded,
				"cached": 0, "failed": failed, "aborted": 0, "stored": 0, "ignored": 0, "retries": 0, "terminated": false,
				"loadCpus": 0, "loadMemory": 0, "peakRunning": 0, "peakCpus": 0, "peakMemory": 0},
		},
	}
}

func (v nf) progressBody(tasks []map[string]any, counts map[string]any, at time.Time) map[string]any {
	b := map[string]any{"tasks": tasks, "progress": counts, "instant": at.UnixMilli()}
	if v.atLeast("25.02") {
		b["containers"] = []map[string]any{{"requestId": "r-1", "sourceImage": "debian:latest", "targetImage": "wave/debian",
			"buildId": "bd-2", "mirrorId": nil, "scanId": nil, "cached": false, "freeze": false, "requestTime": "2025-03-19T23:51:10+02:00"}}
	}
	return b
}

func metric(mean float64, label string) map[string]any {
	return map[string]any{"mean": mean, "min": mean / 2, "q1": mean * 0.75, "q2": mean, "q3": mean * 1.25, "max": mean * 2,
		"minLabel": label + " (1)", "maxLabel": label + " (2)", "q1Label": label + " (1)", "q2Label": label + " (2)", "q3Label": label + " (2)"}
}

func (v nf) completeBody(runID, session string, start, end time.Time, success bool, counts map[string]any) map[string]any {
	w := v.workflow(runID, session, start)
	delete(w, "platform")
	w["complete"], w["duration"], w["success"] = javaTime(end), end.Sub(start).Milliseconds(), success
	if success {
		w["exitStatus"] = 0
	} else {
		w["exitStatus"], w["errorMessage"] = 1, "Process `ALIGN (2)` terminated with an error exit status (1)"
		w["errorReport"] = "Error executing process > 'ALIGN (2)'\n\nCaused by:\n  Process `ALIGN (2)` terminated with an error exit status (1)"
	}
	w["stats"] = map[string]any{"succeedCount": 2, "failedCount": 0, "cachedCount": 0, "ignoredCount": 0, "computeTimeFmt": "(a few seconds)", "succeedPct": 100.0}
	ms := []map[string]any{{"process": "FASTQC", "cpu": metric(180.5, "FASTQC"), "mem": metric(1<<30, "FASTQC"), "vmem": nil,
		"time": metric(1800000, "FASTQC"), "reads": metric(89020, "FASTQC"), "writes": metric(196, "FASTQC"),
		"cpuUsage": metric(90.25, "FASTQC"), "memUsage": metric(25, "FASTQC"), "timeUsage": nil}}
	if v.atLeast("26.05") {
		ms[0]["gpuUsage"] = nil
	}
	return map[string]any{"workflow": w, "metrics": ms, "progress": counts, "instant": end.UnixMilli()}
}
