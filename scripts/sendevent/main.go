// Command sendevent sends one of the real-shaped samples in events/ to the
// local stack's event queue, filled in for a run: its instance or head job
// id (a new task id for compute samples), its ownership tags, a fresh event
// id and the current time. The head simulator already plays every run; this
// is for trying an event by hand (a Spot interruption, a stop…).
//
//	go run ./scripts/sendevent ec2-spot-interruption-warning RUN_ID
//	go run ./scripts/sendevent batch-compute-failed RUN_ID
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/tags"
)

func main() {
	if err := send(); err != nil {
		fmt.Fprintln(os.Stderr, "sendevent:", err)
		os.Exit(1)
	}
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func send() error {
	if len(os.Args) != 3 {
		return fmt.Errorf("usage: go run ./scripts/sendevent SAMPLE RUN_ID   (SAMPLE: a file name in events/, e.g. ec2-running)")
	}
	sample, runID := strings.TrimSuffix(os.Args[1], ".json"), os.Args[2]
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "http://127.0.0.1:" + envOr("CEFORGE_EMULATOR_PORT", "4566")
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		os.Setenv("AWS_ACCESS_KEY_ID", "local")
		os.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	}
	ctx := context.Background()
	f, err := awsclient.New(ctx, awsclient.Options{Region: cfg.Region, Endpoint: cfg.Endpoint})
	if err != nil {
		return err
	}
	var r run.Run
	if _, err := store.New(dynamodb.NewFromConfig(f.Config("")), cfg.Table).Get(ctx, store.KindRun, runID, &r); err != nil {
		return fmt.Errorf("read run %s from table %s: %w", runID, cfg.Table, err)
	}
	b, err := os.ReadFile(filepath.Join("events", sample+".json"))
	if err != nil {
		return err
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		return fmt.Errorf("events/%s.json: %w", sample, err)
	}
	now := time.Now().UTC()
	ev["id"], ev["time"], ev["region"] = uuid(), now.Format(time.RFC3339), cfg.Region
	detail, _ := ev["detail"].(map[string]any)
	if detail == nil {
		return fmt.Errorf("events/%s.json has no detail: not an EC2 or Batch sample", sample)
	}
	queue := eventsrc.EC2Queue
	switch {
	case strings.HasPrefix(sample, "ec2-"):
		if r.Backend == nil || r.Backend.InstanceID == "" {
			return fmt.Errorf("run %s has no head instance (is it an AWS Cloud run?)", runID)
		}
		detail["instance-id"] = r.Backend.InstanceID
		ev["resources"] = []string{fmt.Sprintf("arn:aws:ec2:%s:123456789012:instance/%s", cfg.Region, r.Backend.InstanceID)}
	case strings.HasPrefix(sample, "batch-head-") || strings.HasPrefix(sample, "batch-compute-"):
		queue = eventsrc.BatchQueue
		jobID := uuid()
		if strings.HasPrefix(sample, "batch-head-") {
			if r.Backend == nil || r.Backend.JobID == "" {
				return fmt.Errorf("run %s has no head job (is it an AWS Batch run?)", runID)
			}
			jobID = r.Backend.JobID
			detail["jobName"] = cfg.Prefix + "head-" + runID
		}
		arn := fmt.Sprintf("arn:aws:batch:%s:123456789012:job/%s", cfg.Region, jobID)
		detail["jobId"], detail["jobArn"], ev["resources"] = jobID, arn, []string{arn}
		t, _ := detail["tags"].(map[string]any)
		if t == nil {
			t = map[string]any{}
		}
		t[tags.RunID], t[tags.CEID], t[tags.Managed] = runID, r.ComputeEnvID, "true"
		detail["tags"] = t
		for _, k := range []string{"createdAt", "startedAt", "stoppedAt"} {
			if _, ok := detail[k]; ok {
				detail[k] = now.UnixMilli()
			}
		}
	default:
		return fmt.Errorf("%s is not an EC2 (ec2-*) or Batch (batch-head-*, batch-compute-*) sample", sample)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	q := sqs.NewFromConfig(f.Config(""))
	url, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(cfg.Prefix + queue)})
	if err != nil {
		return fmt.Errorf("find queue %s%s (is make local running?): %w", cfg.Prefix, queue, err)
	}
	if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url.QueueUrl, MessageBody: aws.String(string(body))}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	fmt.Printf("sent %s for run %s to %s%s\n", sample, runID, cfg.Prefix, queue)
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
