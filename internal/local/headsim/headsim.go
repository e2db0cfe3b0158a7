// Package headsim plays the heads of runs in the local stack, where the
// emulator starts instances and jobs but nothing runs on them. A simulated
// head does what a real one makes AWS do, through the same paths: its
// EventBridge events (EC2 state changes, Batch job state changes of the head
// and of its compute tasks) go to the same SQS queues the event consumers
// read, with current timestamps; its console lines go to the CloudWatch
// Logs group and stream a real head's agent or awslogs driver writes; an
// AWS Cloud head uploads its exit status and nextflow.log to the work dir
// and terminates its instance. A pipeline takes about Options.Duration from
// launch to end; a studio runs until it is cancelled. A run labelled
// simulate=fail ends FAILED. A head given a trace endpoint and token secret
// also reports as Nextflow does (nextflow.go); a resumed run finds its first
// process's tasks cached.
//
// EC2 heads are found by polling the emulator for ceforge's instances, as
// an instance would boot. Batch heads are seen through JobsAPI, which the
// local stack puts in front of the Batch launcher's client: the emulator
// ends every Batch job SUCCEEDED the moment it is submitted, so DescribeJobs
// answers for a simulated job are overlaid with the simulated state, which
// keeps the reconciler's view and the events consistent, as in AWS.
package headsim

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// FailLabel is the label (and tag) that makes a simulated pipeline fail.
const (
	FailLabel = "simulate"
	FailValue = "fail"
)

// Options of a Simulator.
type Options struct {
	// Duration from launch to the end of a pipeline (default 30s).
	Duration time.Duration
	// BatchQueueURL and EC2QueueURL are the event queues.
	BatchQueueURL, EC2QueueURL string
	// Region and Account go into the events (defaults us-east-1, 123456789012).
	Region, Account string
	// Prefix of resource names (default ceforge-).
	Prefix string
	// Poll is how often the emulator is asked for new instances (default 500ms).
	Poll time.Duration
	Log  *slog.Logger
}

// Simulator plays every head it finds until its context ends.
type Simulator struct {
	opts  Options
	ec2   *ec2.Client
	sqs   *sqs.Client
	logs  *cloudwatchlogs.Client
	s3    *s3.Client
	batch *batch.Client
	// secrets reads runs' progress tokens, as heads do (nextflow.go).
	secrets *secretsmanager.Client
	ecs     *ecs.Client
	start   time.Time

	mu    sync.Mutex
	heads map[string]*head // by instance id or job id
	tasks map[string]*simTask
	hosts map[string]string // Batch hosts: container instance ARN by ECS cluster
	wg    sync.WaitGroup
	ctx   context.Context
}

// New returns a Simulator using the emulator at cfg.
func New(cfg aws.Config, opts Options) *Simulator {
	if opts.Duration <= 0 {
		opts.Duration = 30 * time.Second
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	if opts.Prefix == "" {
		opts.Prefix = "ceforge-"
	}
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Simulator{
		opts: opts, ec2: ec2.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), logs: cloudwatchlogs.NewFromConfig(cfg),
		s3:    s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
		batch: batch.NewFromConfig(cfg), secrets: secretsmanager.NewFromConfig(cfg), ecs: ecs.NewFromConfig(cfg),
		start: time.Now(), heads: map[string]*head{}, tasks: map[string]*simTask{}, hosts: map[string]string{}, ctx: context.Background(),
	}
}

// Run finds new EC2 heads until ctx ends, then waits for the heads it plays.
func (s *Simulator) Run(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	t := time.NewTicker(s.opts.Poll)
	defer t.Stop()
	for {
		if err := s.scanInstances(ctx); err != nil && ctx.Err() == nil {
			s.opts.Log.Debug("head simulator: list instances", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return
		case <-t.C:
		}
	}
}

// at scales a point of the 30-second reference timeline to Duration.
func (s *Simulator) at(sec float64) time.Duration {
	return time.Duration(sec / 30 * float64(s.opts.Duration))
}

// head is one simulated head (an instance or a Batch job).
type head struct {
	id       string // instance id or job id
	runID    string
	ceID     string
	fail     bool
	studio   bool
	pipeline string
	revision string
	runName  string
	workDir  string
	resume   string // the Nextflow session a relaunched run resumes
	group    string
	stream   string
	cancel   context.CancelFunc
	ended    chan struct{}

	mu      sync.Mutex
	batch   *batchJob // Batch heads only
	stopped bool      // stopped from outside (terminate, cancel)
	reason  string
}

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func uuid() string {
	h := newID(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// event sends one EventBridge event (as its SQS target receives it).
func (s *Simulator) event(ctx context.Context, queueURL, source, detailType string, resources []string, detail any, at time.Time) error {
	body, err := json.Marshal(map[string]any{
		"version": "0", "id": uuid(), "detail-type": detailType, "source": source,
		"account": s.opts.Account, "time": at.UTC().Format(time.RFC3339), "region": s.opts.Region,
		"resources": resources, "detail": detail,
	})
	if err != nil {
		return fmt.Errorf("encode %s event: %w", detailType, err)
	}
	_, err = s.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(string(body))})
	if err != nil {
		return fmt.Errorf("send %s event: %w", detailType, err)
	}
	return nil
}

// logLines writes console lines to the head's stream, creating the group
// and stream when missing (the CloudWatch agent and the awslogs driver do).
func (s *Simulator) logLines(ctx context.Context, h *head, lines ...string) {
	now := time.Now().UnixMilli()
	evs := make([]cwtypes.InputLogEvent, len(lines))
	for i, l := range lines {
		evs[i] = cwtypes.InputLogEvent{Message: aws.String(l), Timestamp: aws.Int64(now)}
	}
	in := &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(h.group), LogStreamName: aws.String(h.stream), LogEvents: evs}
	if _, err := s.logs.PutLogEvents(ctx, in); err == nil {
		return
	}
	_, _ = s.logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(h.group)})
	_, _ = s.logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(h.group), LogStreamName: aws.String(h.stream)})
	if _, err := s.logs.PutLogEvents(ctx, in); err != nil && ctx.Err() == nil {
		s.opts.Log.Warn("head simulator: write log lines", "run_id", h.runID, "error", err.Error())
	}
}

// step is one point of a head's timeline.
type step struct {
	at time.Duration
	do func(ctx context.Context)
}

// play runs steps in order until the last or until the head is stopped;
// then finish runs (with a fresh context: it reports the end).
func (s *Simulator) play(h *head, steps []step, finish func()) {
	s.mu.Lock()
	parent := s.ctx
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(parent)
	h.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(h.ended)
		defer cancel()
		begin := time.Now()
		for _, st := range steps {
			select {
			case <-ctx.Done():
				if parent.Err() == nil {
					finish()
				}
				return
			case <-time.After(time.Until(begin.Add(st.at))):
			}
			st.do(ctx)
		}
		if parent.Err() == nil {
			finish()
		}
	}()
}

// pipelineLines are the console lines of a simulated Nextflow run, in
// phases: start, each task group, end.
func pipelineStart(h *head, executor string) []string {
	rev := ""
	if h.revision != "" {
		rev = " - revision: " + h.revision
	}
	return []string{
		"N E X T F L O W  ~  version 24.10.5",
		fmt.Sprintf("Launching `%s` [%s] DSL2%s", h.pipeline, h.runName, rev),
		"executor >  " + executor,
	}
}

// task is a simulated compute task.
type task struct {
	process, tag string
	hash         string
}

// taskGroups are the simulated pipeline's processes: two samples through
// QC and alignment, then one report.
func taskGroups() [][]task {
	mk := func(p, tag string) task { return task{process: p, tag: tag, hash: newID(1) + "/" + newID(3)} }
	return [][]task{
		{mk("FASTQC", "sample1"), mk("FASTQC", "sample2")},
		{mk("ALIGN", "sample1"), mk("ALIGN", "sample2")},
		{mk("MULTIQC", "all")},
	}
}

func (t task) name() string { return fmt.Sprintf("%s (%s)", t.process, t.tag) }

func endLines(h *head, began time.Time, succeeded int, failedTask *task) []string {
	d := time.Since(began).Round(time.Second)
	if failedTask != nil {
		return []string{
			fmt.Sprintf("ERROR ~ Error executing process > '%s'", failedTask.name()),
			"",
			"Caused by:",
			fmt.Sprintf("  Process `%s` terminated with an error exit status (1)", failedTask.name()),
			"",
			fmt.Sprintf("Execution cancelled -- Finishing pending tasks before exit (duration %s)", d),
		}
	}
	return []string{
		"Completed at: " + time.Now().UTC().Format("02-Jan-2006 15:04:05"),
		fmt.Sprintf("Duration    : %s", d),
		"CPU hours   : 0.1",
		fmt.Sprintf("Succeeded   : %d", succeeded),
	}
}

// base64Std is used for user-data.
var base64Std = base64.StdEncoding
