package headsim

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/ceforge/ceforge/internal/cloudce/userdata"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/tags"
)

const ec2Source, ec2StateChange = "aws.ec2", "EC2 Instance State-change Notification"

// scanInstances starts a head for each new ceforge instance and notices
// the instances of running heads that were terminated from outside (cancel,
// sweeper).
func (s *Simulator) scanInstances(ctx context.Context) error {
	pages := ec2.NewDescribeInstancesPaginator(s.ec2, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + tags.Managed), Values: []string{"true"}},
	}})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, res := range out.Reservations {
			for _, inst := range res.Instances {
				s.seeInstance(ctx, inst)
			}
		}
	}
	return nil
}

func tagOf(ts []ec2types.Tag, k string) string {
	for _, t := range ts {
		if aws.ToString(t.Key) == k {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func (s *Simulator) seeInstance(ctx context.Context, inst ec2types.Instance) {
	id := aws.ToString(inst.InstanceId)
	state := ""
	if inst.State != nil {
		state = string(inst.State.Name)
	}
	s.mu.Lock()
	h, known := s.heads[id]
	s.mu.Unlock()
	if known {
		if state == "terminated" || state == "shutting-down" || state == "stopped" {
			h.stop("instance " + state)
		}
		return
	}
	runID := tagOf(inst.Tags, tags.RunID)
	// Only heads launched while this simulator runs: an instance left in a
	// kept emulator from an earlier session has no one playing it.
	if runID == "" || state != "running" && state != "pending" || aws.ToTime(inst.LaunchTime).Before(s.start.Add(-time.Minute)) {
		s.mu.Lock()
		s.heads[id] = &head{id: id, stopped: true, ended: closed()}
		s.mu.Unlock()
		return
	}
	vars, err := s.userData(ctx, id)
	if err != nil {
		s.opts.Log.Warn("head simulator: read user-data", "instance_id", id, "error", err.Error())
	}
	h = &head{
		id: id, runID: runID, ceID: tagOf(inst.Tags, tags.CEID), fail: tagOf(inst.Tags, FailLabel) == FailValue,
		studio: vars["CEFORGE_STUDIO_IMAGE"] != "", pipeline: vars["CEFORGE_PIPELINE"], revision: vars["CEFORGE_REVISION"],
		runName: strings.TrimPrefix(tagOf(inst.Tags, tags.Name), s.opts.Prefix), workDir: vars["CEFORGE_WORK_DIR"], resume: vars["CEFORGE_RESUME"],
		group: vars["CEFORGE_LOG_GROUP"], stream: runID, ended: make(chan struct{}),
	}
	if h.group == "" {
		h.group = "/ceforge/runs"
	}
	s.mu.Lock()
	s.heads[id] = h
	s.mu.Unlock()
	s.opts.Log.Info("head simulator: instance boots", "run_id", runID, "instance_id", id)
	s.playInstance(h, vars)
}

func closed() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// stop ends the head from outside (its instance terminated, its job
// cancelled); the head reports its end.
func (h *head) stop(reason string) {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return
	}
	h.stopped, h.reason = true, reason
	cancel := h.cancel
	h.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (h *head) wasStopped() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped, h.reason
}

// userData reads the instance's user-data and returns the variables its
// script assigns (parsed as bash, as the instance would run it).
func (s *Simulator) userData(ctx context.Context, id string) (map[string]string, error) {
	out, err := s.ec2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: ec2types.InstanceAttributeNameUserData})
	if err != nil {
		return nil, fmt.Errorf("describe user-data: %w", err)
	}
	if out.UserData == nil || out.UserData.Value == nil {
		return map[string]string{}, nil
	}
	raw, err := base64Std.DecodeString(aws.ToString(out.UserData.Value))
	if err != nil {
		return nil, fmt.Errorf("decode user-data: %w", err)
	}
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("inflate user-data: %w", err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("inflate user-data: %w", err)
		}
	}
	return assignments(string(raw))
}

func assignments(script string) (map[string]string, error) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(script), "user-data")
	if err != nil {
		return nil, fmt.Errorf("parse user-data: %w", err)
	}
	vars := map[string]string{}
	for _, st := range f.Stmts {
		call, ok := st.Cmd.(*syntax.CallExpr)
		if !ok || len(call.Args) > 0 {
			continue
		}
		for _, a := range call.Assigns {
			if a.Value == nil {
				continue
			}
			if v, err := expand.Literal(nil, a.Value); err == nil {
				vars[a.Name.Value] = v
			}
		}
	}
	return vars, nil
}

// playInstance is an AWS Cloud head: pending, running, the console log,
// then the exit status and nextflow.log uploaded, the instance terminated
// by its own shutdown, shutting-down and terminated.
func (s *Simulator) playInstance(h *head, vars map[string]string) {
	began := time.Now()
	res := []string{fmt.Sprintf("arn:aws:ec2:%s:%s:instance/%s", s.opts.Region, s.opts.Account, h.id)}
	state := func(ctx context.Context, st string) {
		if err := s.event(ctx, s.opts.EC2QueueURL, ec2Source, ec2StateChange, res, map[string]string{"instance-id": h.id, "state": st}, time.Now()); err != nil && ctx.Err() == nil {
			s.opts.Log.Warn("head simulator: event", "run_id", h.runID, "error", err.Error())
		}
	}
	log := func(lines ...string) func(context.Context) {
		return func(ctx context.Context) { s.logLines(ctx, h, lines...) }
	}
	host := "ip-10-0-" + fmt.Sprint(len(h.id)%200) + "-" + fmt.Sprint(int(h.id[len(h.id)-1])) + ".ec2.internal"
	steps := []step{
		{s.at(0.5), func(ctx context.Context) { state(ctx, "pending") }},
		{s.at(3), func(ctx context.Context) { state(ctx, "running") }},
		{s.at(4), log("ceforge: run "+h.runID+" starting on "+host, "ceforge: CloudWatch agent started")},
	}
	if h.studio {
		port := vars["CEFORGE_STUDIO_PORT"]
		steps = append(steps,
			step{s.at(5), log("ceforge: pulling studio image " + vars["CEFORGE_STUDIO_IMAGE"])},
			step{s.at(8), log("ceforge: studio listening on 127.0.0.1:" + port + " (connect with Session Manager port forwarding)")},
			// A studio runs until it is stopped.
			step{24 * time.Hour * 365, func(context.Context) {}},
		)
	} else {
		var rep *reporter // Nextflow's progress reports, when the head is given them
		report := func(ctx context.Context, id int, t task, status string) {
			if rep != nil {
				rep.task(ctx, id, t, status, fmt.Sprint(4000+id)) // the local executor's PID
			}
		}
		steps = append(steps, step{s.at(5), func(ctx context.Context) {
			s.logLines(ctx, h, pipelineStart(h, "local (docker)")...)
			if rep = s.newReporter(ctx, h, vars, "local"); rep != nil {
				rep.begin(ctx)
			}
		}})
		var failed *task
		n, at, taskID := 0, 7.0, 0
		for gi, group := range taskGroups() {
			if gi == 0 && h.resume != "" {
				// Resumed: the first process's tasks ran before, cached now.
				for _, t := range group {
					taskID++
					id := taskID
					steps = append(steps, step{s.at(at), func(ctx context.Context) {
						s.logLines(ctx, h, fmt.Sprintf("[%s] Cached process > %s", t.hash, t.name()))
						report(ctx, id, t, "CACHED")
					}})
				}
				at += 1.5
				continue
			}
			first := taskID + 1
			for _, t := range group {
				taskID++
				id := taskID
				steps = append(steps, step{s.at(at), func(ctx context.Context) {
					s.logLines(ctx, h, fmt.Sprintf("[%s] Submitted process > %s", t.hash, t.name()))
					report(ctx, id, t, "SUBMITTED")
				}})
			}
			for ti, t := range group {
				t, id := t, first+ti
				steps = append(steps, step{s.at(at + 2), func(ctx context.Context) { report(ctx, id, t, "RUNNING") }})
			}
			at += 5
			for ti, t := range group {
				t, id := t, first+ti
				if h.fail && gi == 1 && ti == 1 {
					failed = &t
					steps = append(steps, step{s.at(at), func(ctx context.Context) {
						s.logLines(ctx, h, fmt.Sprintf("[%s] NOTE: Process `%s` terminated with an error exit status (1)", t.hash, t.name()))
						report(ctx, id, t, "FAILED")
					}})
					continue
				}
				n++
				steps = append(steps, step{s.at(at), func(ctx context.Context) {
					s.logLines(ctx, h, fmt.Sprintf("[%s] Completed process > %s ✔", t.hash, t.name()))
					report(ctx, id, t, "COMPLETED")
				}})
			}
			at += 1.5
			if failed != nil {
				break
			}
		}
		steps = append(steps, step{s.at(at), func(ctx context.Context) {
			s.logLines(ctx, h, endLines(h, began, n, failed)...)
			if rep != nil {
				rep.complete(ctx, failed)
			}
		}})
	}
	finish := func() {
		ctx := context.Background()
		stopped, reason := h.wasStopped()
		code := 0
		switch {
		case stopped:
			s.logLines(ctx, h, "ceforge: "+reason+"; the run stops")
		case h.fail:
			code = 1
		}
		if !stopped {
			s.logLines(ctx, h, fmt.Sprintf("ceforge: run %s ended with exit code %d; shutting down", h.runID, code))
			s.upload(ctx, h, code)
			if _, err := s.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{h.id}}); err != nil {
				s.opts.Log.Warn("head simulator: shut down", "run_id", h.runID, "error", err.Error())
			}
			h.stop("shut down")
		}
		state(ctx, "shutting-down")
		time.Sleep(s.at(1))
		state(ctx, "terminated")
		s.opts.Log.Info("head simulator: instance terminated", "run_id", h.runID, "instance_id", h.id, "exit_code", code, "stopped", stopped)
	}
	s.play(h, steps, finish)
}

// upload writes what the head's exit trap uploads: nextflow.log (pipelines)
// and the exit-status file the platform reads to decide how the run ended.
func (s *Simulator) upload(ctx context.Context, h *head, code int) {
	bucket, prefix, err := computeenv.ParseS3URI("workDir", h.workDir)
	if err != nil {
		s.opts.Log.Warn("head simulator: no S3 work dir", "run_id", h.runID, "work_dir", h.workDir)
		return
	}
	put := func(key, body string) {
		if _, err := s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			s.opts.Log.Warn("head simulator: upload", "run_id", h.runID, "key", key, "error", err.Error())
		}
	}
	if !h.studio {
		put(strings.TrimSuffix(userdata.ExitStatusKey(prefix, h.runID), userdata.ExitStatusFile)+userdata.NextflowLogFile,
			fmt.Sprintf("%s [main] INFO  nextflow.cli.Launcher - simulated run %s (local stack)\n", time.Now().UTC().Format("Jan-02 15:04:05.000"), h.runID))
	}
	put(userdata.ExitStatusKey(prefix, h.runID), fmt.Sprintf("%d\n", code))
}
