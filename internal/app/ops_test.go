package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/logsroutes"
	"github.com/ceforge/ceforge/internal/app/tokens"
	"github.com/ceforge/ceforge/internal/awsclient/fsread"
	"github.com/ceforge/ceforge/internal/awsclient/ssmparam"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/credential/rolecheck"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/forge/steps"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/secret/smvault"
	"github.com/ceforge/ceforge/internal/testenv"
)

// invocations records what a function queued for another (the stand-in
// of an asynchronous Lambda invoke; apptest's invoker makes the real call).
type invocations struct {
	mu       sync.Mutex
	function []string
	payloads [][]byte
}

func (i *invocations) factory(_ aws.Config, function string) func(context.Context, []byte) error {
	return func(_ context.Context, payload []byte) error {
		i.mu.Lock()
		defer i.mu.Unlock()
		i.function = append(i.function, function)
		i.payloads = append(i.payloads, payload)
		return nil
	}
}

func (i *invocations) take(t *testing.T) (string, []byte) {
	t.Helper()
	i.mu.Lock()
	defer i.mu.Unlock()
	require.Len(t, i.payloads, 1, "one hand-off")
	f, p := i.function[0], i.payloads[0]
	i.function, i.payloads = nil, nil
	return f, p
}

// function wires the deployed function name's App (the features its
// main.go names, from ad) on the pipeline's emulator and table, printing
// its EMF to emf; its calls are IAM-checked as name's.
func (p *pipeline) function(t *testing.T, emf io.Writer, name string, mutate func(*config.Config), ad app.Adapters) *app.App {
	t.Helper()
	c := p.Config // as deployed: the permissions boundary, the cursor key secret
	if mutate != nil {
		mutate(&c)
	}
	features, err := app.FunctionFeatures(name, ad)
	require.NoError(t, err)
	a, err := app.New(context.Background(), c, app.Options{AWS: p.Function(name), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(emf)}, features...)
	require.NoError(t, err)
	return a
}

// emfSignature is what a CloudWatch query matches of an EMF metric:
// namespace, name and the exact dimension set.
type emfSignature struct {
	Namespace  string   `json:"namespace"`
	Metric     string   `json:"metric"`
	Dimensions []string `json:"dimensions"`
}

func (s emfSignature) key() string {
	return s.Namespace + " " + s.Metric + " {" + strings.Join(s.Dimensions, ",") + "}"
}

// signatures parses EMF lines into the metrics they publish.
func signatures(t *testing.T, lines []string) map[string]emfSignature {
	t.Helper()
	out := map[string]emfSignature{}
	for _, line := range lines {
		var rec struct {
			AWS struct {
				CloudWatchMetrics []struct {
					Namespace  string
					Dimensions [][]string
					Metrics    []struct{ Name string }
				}
			} `json:"_aws"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		require.NotEmpty(t, rec.AWS.CloudWatchMetrics, "not an EMF line: %s", line)
		for _, d := range rec.AWS.CloudWatchMetrics {
			for _, dims := range d.Dimensions {
				sorted := append([]string{}, dims...)
				sort.Strings(sorted)
				for _, m := range d.Metrics {
					s := emfSignature{Namespace: d.Namespace, Metric: m.Name, Dimensions: sorted}
					out[s.key()] = s
				}
			}
		}
	}
	return out
}

// TestFunctionsEmitWhatTheDashboardReads runs the functions' real code
// paths (the API, both event consumers through their queues, the reconciler
// and the sweeper, each wired as its main.go wires it) and compares the
// metrics their EMF lines publish with every dashboard and alarm query of
// the synthesized template (internal/metrics/testdata/queries.json, kept
// equal to the template by infra/stack TestMetricQueriesGolden): each query
// must match a metric a function prints, namespace, name and dimension set
// alike, and each printed metric must be read by some query.
func TestFunctionsEmitWhatTheDashboardReads(t *testing.T) {
	p := newPipeline(t) // the consumers print into p.emf
	ctx := context.Background()
	emf := p.emf
	queued := &invocations{}
	api := p.function(t, emf, app.FnAPI, func(c *config.Config) {
		c.ReconcilerFunction, c.SweeperFunction = "ceforge-reconciler", "ceforge-sweeper"
	}, app.Adapters{Parameters: ssmparam.New, FileSystems: fsread.New, Invoker: queued.factory, LogRoutes: logsroutes.Feature, Tokens: tokens.Feature,
		Verifier: rolecheck.New, Vaults: smvault.New})
	reconciler := p.function(t, emf, app.FnReconciler, nil, app.Adapters{Applier: steps.NewApplier, Tokens: tokens.Feature})
	sweeper := p.function(t, emf, app.FnSweeper, nil, app.Adapters{})
	p.Router = api.Router() // requests go to the api function

	// The API records a CE and hands it to the reconciler, which provisions it.
	res := p.Do(t, "POST", "/compute-envs", map[string]any{"name": "ops", "platform": computeenv.PlatformCloud, "region": testenv.Region,
		"workDir": "s3://" + bucket + "/work", "cloud": map[string]any{}})
	require.Equal(t, 201, res.Status, string(res.Body))
	_, payload := queued.take(t)
	require.NoError(t, reconciler.Reconcile(ctx, payload))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	require.Equal(t, computeenv.StatusAvailable, get(t, reconciler, ce.ID).Status)

	// Two runs: one ends through events, one through the reconciler; a
	// third is cancelled before its head is recorded (the API ends it).
	a, b := p.launch(t, ce.ID, run.KindPipeline), p.launch(t, ce.ID, run.KindStudio)
	body := inRunRegion(docSample(t, "eventbridge-patterns-instance-state-change-terminated.json"))
	for _, r := range []run.Run{a, b} {
		p.send(t, eventsrc.EC2Queue, strings.Replace(strings.ReplaceAll(body, docInstanceID, r.Backend.InstanceID), `"terminated"`, `"running"`, 1))
	}
	p.send(t, eventsrc.EC2Queue, strings.ReplaceAll(body, "i-1234567890abcdef0", "i-0fffffffffffffff0")) // not ours
	p.send(t, eventsrc.EC2Queue, "not an event")                                                         // dead-lettered in the end
	p.putExit(t, a.ID, "0")
	p.send(t, eventsrc.EC2Queue, strings.ReplaceAll(strings.Replace(body, "2017-12-22T18:43:48Z", time.Now().UTC().Format(time.RFC3339), 1), docInstanceID, a.Backend.InstanceID))
	p.drain(t, eventsrc.EC2Queue, 3*eventsrc.MaxReceiveCount)
	require.Equal(t, run.StatusSucceeded, p.run(t, a.ID).Status)

	p.putExit(t, b.ID, "1")
	_, err := p.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{b.Backend.InstanceID}})
	require.NoError(t, err)
	require.NoError(t, reconciler.Reconcile(ctx, sample(t, "reconciler-schedule.json")))
	require.Equal(t, run.StatusFailed, p.run(t, b.ID).Status)

	// A sweep (nothing to delete: it still reports what it deleted and saved).
	_, err = sweeper.Sweeper().HandleInvocation(ctx, sample(t, "reconciler-schedule.json"), false)
	require.NoError(t, err)

	emitted := signatures(t, emf.take())
	raw, err := os.ReadFile("../metrics/testdata/queries.json")
	require.NoError(t, err)
	var queries []struct {
		emfSignature
		UsedBy []string `json:"usedBy"`
	}
	require.NoError(t, json.Unmarshal(raw, &queries))
	require.NotEmpty(t, queries)
	read := map[string]bool{}
	for _, q := range queries {
		read[q.key()] = true
		_, ok := emitted[q.key()]
		require.True(t, ok, "%v queries %s, which no function prints; they print:\n%s", q.UsedBy, q.key(), keys(emitted))
	}
	for k := range emitted {
		require.True(t, read[k], "the functions print %s, which no dashboard widget or alarm reads", k)
	}
}

func keys(m map[string]emfSignature) string {
	var out []string
	for k := range m {
		out = append(out, "  "+k)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
