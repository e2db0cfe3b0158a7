package headsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// reporter plays Nextflow's side of the trace protocol (-with-tower) for a
// simulated pipeline head that was given CEFORGE_TRACE_URL and
// CEFORGE_TRACE_SECRET, as the real head scripts are: it reads the run's
// token from its secret (the head does so with its own role), then sends
// create, begin, a progress call for every task change, and complete, with
// the bodies Nextflow 24.10 sends and its Basic @token authorisation. A
// head without them, or whose secret cannot be read, reports nothing (as a
// real head then runs without live progress).
type reporter struct {
	s        *Simulator
	h        *head
	url      string
	token    string
	session  string
	executor string
	began    time.Time

	mu       sync.Mutex
	tasks    map[int]*simRecord
	order    []string // process names, first seen first
	failed   bool
	instants int64
}

// simRecord is one task as the reporter last sent it.
type simRecord struct {
	id                      int
	t                       task
	status                  string
	nativeID                string
	submit, start, complete time.Time
	exit                    int
}

const nextflowVersion = "24.10.5"

// newReporter returns the reporter of head h, or nil when it does not report.
func (s *Simulator) newReporter(ctx context.Context, h *head, vars map[string]string, executor string) *reporter {
	url, secret := strings.TrimRight(vars["CEFORGE_TRACE_URL"], "/"), vars["CEFORGE_TRACE_SECRET"]
	if url == "" || secret == "" || h.studio {
		return nil
	}
	out, err := s.secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret)})
	if err != nil || aws.ToString(out.SecretString) == "" {
		s.logLines(ctx, h, "ceforge: could not read the run's progress token; running without live progress")
		return nil
	}
	r := &reporter{
		s: s, h: h, url: url, token: aws.ToString(out.SecretString), session: uuid(), executor: executor,
		tasks: map[int]*simRecord{},
	}
	if h.resume != "" {
		r.session = h.resume // nextflow -resume <session> goes on in that session
	}
	return r
}

// javaTime is a date as Java's OffsetDateTime prints it (what Nextflow sends).
func javaTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// send makes one trace call; failures are logged, as Nextflow logs them.
func (r *reporter) send(ctx context.Context, method, path string, body map[string]any) {
	r.mu.Lock()
	r.instants = max(r.instants+1, time.Now().UnixMilli())
	body["instant"] = r.instants
	r.mu.Unlock()
	b, err := json.Marshal(body)
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, bytes.NewReader(b))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Nextflow/"+nextflowVersion)
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("@token:"+r.token)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			r.s.opts.Log.Warn("head simulator: trace call", "run_id", r.h.runID, "path", path, "error", err.Error())
		}
		return
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		r.s.opts.Log.Warn("head simulator: trace call refused", "run_id", r.h.runID, "path", path, "status", res.StatusCode)
	}
}

func (r *reporter) workflow() map[string]any {
	cmd := "nextflow run " + r.h.pipeline
	if r.h.revision != "" {
		cmd += " -r " + r.h.revision
	}
	return map[string]any{
		"id": r.h.runID, "runName": r.h.runName, "sessionId": r.session, "projectName": r.h.pipeline,
		"repository": "https://github.com/" + r.h.pipeline, "revision": r.h.revision, "commandLine": cmd + " -with-tower " + r.url,
		"start": javaTime(r.began), "complete": nil, "duration": nil, "success": false, "exitStatus": nil,
		"workDir": r.h.workDir, "launchDir": "/var/lib/ceforge", "userName": "root", "resume": r.h.resume != "", "containerEngine": "docker",
		"nextflow": map[string]any{"version": nextflowVersion, "build": 5935}, "params": map[string]any{}, "configText": "",
	}
}

// begin sends create and begin (Nextflow sends them at start).
func (r *reporter) begin(ctx context.Context) {
	r.began = time.Now()
	r.send(ctx, http.MethodPost, "/trace/create", map[string]any{
		"sessionId": r.session, "runName": r.h.runName, "projectName": r.h.pipeline, "repository": "https://github.com/" + r.h.pipeline, "workflowId": r.h.runID,
	})
	var names []string
	for _, g := range taskGroups() {
		names = append(names, g[0].process)
	}
	r.send(ctx, http.MethodPut, "/trace/"+r.h.runID+"/begin", map[string]any{"workflow": r.workflow(), "processNames": names, "towerLaunch": false})
}

// task reports task id of t reaching status (SUBMITTED, RUNNING,
// COMPLETED, FAILED, or CACHED for a resumed run's earlier work); nativeID
// is its Batch job id or PID, if any.
func (r *reporter) task(ctx context.Context, id int, t task, status, nativeID string) {
	r.mu.Lock()
	rec, ok := r.tasks[id]
	if !ok {
		rec = &simRecord{id: id, t: t, exit: 2147483647}
		r.tasks[id] = rec
		seen := false
		for _, p := range r.order {
			seen = seen || p == t.process
		}
		if !seen {
			r.order = append(r.order, t.process)
		}
	}
	now := time.Now()
	rec.status = status
	if nativeID != "" {
		rec.nativeID = nativeID
	}
	switch status {
	case "SUBMITTED":
		rec.submit = now
	case "RUNNING":
		rec.start = now
	case "COMPLETED", "FAILED", "CACHED":
		if rec.submit.IsZero() {
			rec.submit = now
		}
		if rec.start.IsZero() {
			rec.start = now
		}
		rec.complete, rec.exit = now, 0
		if status == "FAILED" {
			rec.exit, r.failed = 1, true
		}
	}
	body := map[string]any{"tasks": []any{r.record(rec)}, "progress": r.progress()}
	r.mu.Unlock()
	r.send(ctx, http.MethodPut, "/trace/"+r.h.runID+"/progress", body)
}

// record is a task as TraceRecord.toMap() gives it.
func (r *reporter) record(t *simRecord) map[string]any {
	m := map[string]any{
		"taskId": t.id, "status": t.status, "hash": t.t.hash, "name": t.t.name(), "process": t.t.process, "tag": t.t.tag,
		"module": []string{}, "container": "quay.io/biocontainers/" + strings.ToLower(t.t.process) + ":1.0", "attempt": 1, "exit": t.exit,
		"submit": javaTime(t.submit), "start": javaTime(t.start), "complete": javaTime(t.complete), "workdir": r.h.workDir + "/" + t.t.hash,
		"cpus": 2, "memory": int64(4 << 30), "time": int64(3600000), "executor": r.executor, "nativeId": nil,
		"machineType": nil, "cloudZone": nil, "priceModel": nil, "errorAction": nil,
	}
	if t.nativeID != "" {
		m["nativeId"] = t.nativeID
	}
	if !t.start.IsZero() && r.executor == "awsbatch" && t.status != "CACHED" {
		// Nextflow's Batch executor says where a task ran; the local
		// executor of an AWS Cloud head does not (its instance prices them).
		m["machineType"], m["cloudZone"], m["priceModel"] = "m6i.xlarge", r.s.opts.Region+"a", "standard"
	}
	if !t.complete.IsZero() && t.status != "CACHED" {
		m["duration"], m["realtime"] = t.complete.Sub(t.submit).Milliseconds(), t.complete.Sub(t.start).Milliseconds()
		m["pcpu"], m["peakRss"], m["rchar"], m["wchar"] = 95.5, int64(512<<20), int64(1<<20), int64(4096)
		if t.status == "FAILED" {
			m["errorAction"] = "TERMINATE"
		}
	}
	return m
}

// progress is the workflow's and each process's counters.
func (r *reporter) progress() map[string]any {
	type counts struct{ submitted, running, succeeded, failed, cached int }
	total := counts{}
	per := map[string]*counts{}
	for _, t := range r.tasks {
		c := per[t.t.process]
		if c == nil {
			c = &counts{}
			per[t.t.process] = c
		}
		for _, x := range []*counts{c, &total} {
			switch t.status {
			case "SUBMITTED":
				x.submitted++
			case "RUNNING":
				x.running++
			case "COMPLETED":
				x.succeeded++
			case "FAILED":
				x.failed++
			case "CACHED":
				x.cached++
			}
		}
	}
	procs := []map[string]any{}
	for i, p := range r.order {
		c := per[p]
		procs = append(procs, map[string]any{
			"index": i + 1, "name": p, "pending": 0, "submitted": c.submitted, "running": c.running, "succeeded": c.succeeded,
			"failed": c.failed, "cached": c.cached, "ignored": 0, "aborted": 0, "retries": 0, "stored": 0, "terminated": c.submitted+c.running == 0,
			"loadCpus": 2 * c.running, "loadMemory": int64(c.running) * (4 << 30),
		})
	}
	return map[string]any{
		"pending": 0, "submitted": total.submitted, "running": total.running, "succeeded": total.succeeded, "failed": total.failed,
		"cached": total.cached, "ignored": 0, "retries": 0, "aborted": 0, "loadCpus": 2 * total.running, "loadMemory": int64(total.running) * (4 << 30),
		"processes": procs,
	}
}

// complete sends the workflow's end: failed names the task that failed.
func (r *reporter) complete(ctx context.Context, failed *task) {
	r.mu.Lock()
	w := r.workflow()
	end := time.Now()
	w["complete"], w["duration"], w["success"], w["exitStatus"] = javaTime(end), end.Sub(r.began).Milliseconds(), failed == nil, 0
	if failed != nil {
		msg := fmt.Sprintf("Process `%s` terminated with an error exit status (1)", failed.name())
		w["exitStatus"], w["errorMessage"] = 1, msg
		w["errorReport"] = fmt.Sprintf("Error executing process > '%s'\n\nCaused by:\n  %s", failed.name(), msg)
	}
	body := map[string]any{"workflow": w, "metrics": []any{}, "progress": r.progress()}
	r.mu.Unlock()
	r.send(ctx, http.MethodPut, "/trace/"+r.h.runID+"/complete", body)
}
