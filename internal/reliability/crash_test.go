package reliability_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/faultproxy"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/tags"
)

// resourcesOf counts what exists in the emulator for a CE, by kind (names
// carry the CE id).
func (f *fixture) resourcesOf(tb testing.TB, ceID string) map[string]int {
	tb.Helper()
	ctx := context.Background()
	cfg := f.AWS.Config(region)
	out := map[string]int{}
	iamc := iam.NewFromConfig(cfg)
	roles, err := iamc.ListRoles(ctx, &iam.ListRolesInput{MaxItems: aws.Int32(1000)})
	require.NoError(tb, err)
	for _, r := range roles.Roles {
		if strings.Contains(aws.ToString(r.RoleName), ceID) {
			out["iam-role"]++
			pols, err := iamc.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: r.RoleName})
			require.NoError(tb, err)
			out["iam-attached-policy"] += len(pols.AttachedPolicies)
			inl, err := iamc.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: r.RoleName})
			require.NoError(tb, err)
			out["iam-inline-policy"] += len(inl.PolicyNames)
		}
	}
	profs, err := iamc.ListInstanceProfiles(ctx, &iam.ListInstanceProfilesInput{MaxItems: aws.Int32(1000)})
	require.NoError(tb, err)
	for _, p := range profs.InstanceProfiles {
		if strings.Contains(aws.ToString(p.InstanceProfileName), ceID) {
			out["iam-instance-profile"]++
			out["iam-profile-role"] += len(p.Roles)
		}
	}
	lts, err := f.EC2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{})
	require.NoError(tb, err)
	for _, lt := range lts.LaunchTemplates {
		if strings.Contains(aws.ToString(lt.LaunchTemplateName), ceID) {
			out["launch-template"]++
		}
	}
	ces, err := f.Batch.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{})
	require.NoError(tb, err)
	for _, c := range ces.ComputeEnvironments {
		if strings.Contains(aws.ToString(c.ComputeEnvironmentName), ceID) {
			out["batch-ce"]++
		}
	}
	qs, err := f.Batch.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{})
	require.NoError(tb, err)
	for _, q := range qs.JobQueues {
		if strings.Contains(aws.ToString(q.JobQueueName), ceID) {
			out["job-queue"]++
		}
	}
	jds, err := f.Batch.DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{Status: aws.String("ACTIVE")})
	require.NoError(tb, err)
	for _, d := range jds.JobDefinitions {
		if strings.Contains(aws.ToString(d.JobDefinitionName), ceID) {
			out["job-definition"]++
		}
	}
	lgs, err := cloudwatchlogs.NewFromConfig(cfg).DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	require.NoError(tb, err)
	for _, g := range lgs.LogGroups {
		if strings.Contains(aws.ToString(g.LogGroupName), ceID) {
			out["log-group"]++
		}
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}

// converge runs reconcile passes until the CE is stable.
func (f *fixture) converge(tb testing.TB, id string) computeenv.ComputeEnv {
	tb.Helper()
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		ce, err := f.Reconciler.ComputeEnvs.Get(ctx, id)
		require.NoError(tb, err)
		if ce.Stable() {
			return *ce
		}
		_ = f.Reconciler.Reconciler.Once(ctx)
	}
	ce, err := f.Reconciler.ComputeEnvs.Get(ctx, id)
	require.NoError(tb, err)
	tb.Fatalf("compute environment %s did not converge: %s %s", id, ce.Status, ce.StatusReason)
	return computeenv.ComputeEnv{}
}

// ceByName finds a CE through the API (a client that lost the create
// answer looks its CE up by name).
func (f *fixture) ceByName(tb testing.TB, name string) string {
	tb.Helper()
	res := f.Do(tb, http.MethodGet, "/compute-envs?limit=100", nil)
	require.Equal(tb, http.StatusOK, res.Status, string(res.Body))
	var page struct {
		Items []computeenv.ComputeEnv `json:"items"`
	}
	res.JSON(tb, &page)
	for _, ce := range page.Items {
		if ce.Name == name && ce.Status != computeenv.StatusDeleted {
			return ce.ID
		}
	}
	return ""
}

var mutatingPrefixes = []string{"create", "put", "attach", "add", "register", "tag", "update", "delete", "detach", "remove", "deregister", "terminate", "run", "submit", "transact"}

func mutating(op string) bool {
	l := strings.ToLower(op)
	for _, p := range mutatingPrefixes {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// ceLifecycle creates a CE (retrying the request the way a client does
// when it got no answer), converges it, then deletes it the same way; a
// rule is active during phase ("create" or "delete") only; mark, when set,
// is called as each phase starts. It returns the resources after create
// and after delete.
func ceLifecycle(tb testing.TB, f *fixture, p *faultproxy.Proxy, body any, name, phase string, rule *faultproxy.Rule, mark func(phase string)) (created, left map[string]int) {
	tb.Helper()
	if mark != nil {
		mark("create")
	}
	if phase == "create" && rule != nil {
		p.SetRules(*rule)
	}
	res := f.Do(tb, http.MethodPost, "/compute-envs", body)
	p.SetRules()
	var id string
	switch {
	case res.Status == http.StatusCreated:
		var got computeenv.ComputeEnv
		res.JSON(tb, &got)
		id = got.ID
	case res.Status >= 500:
		if id = f.ceByName(tb, name); id == "" {
			res = f.Do(tb, http.MethodPost, "/compute-envs", body)
			require.Equal(tb, http.StatusCreated, res.Status, string(res.Body))
			var got computeenv.ComputeEnv
			res.JSON(tb, &got)
			id = got.ID
		}
	default:
		tb.Fatalf("create answered %d: %s", res.Status, res.Body)
	}
	ce := f.converge(tb, id)
	require.Equal(tb, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	created = f.resourcesOf(tb, id)

	if mark != nil {
		mark("delete")
	}
	if phase == "delete" && rule != nil {
		p.SetRules(*rule)
	}
	res = f.Do(tb, http.MethodDelete, "/compute-envs/"+id+"?force=true", nil)
	p.SetRules()
	if res.Status >= 500 {
		res = f.Do(tb, http.MethodDelete, "/compute-envs/"+id+"?force=true", nil)
	}
	require.Contains(tb, []int{http.StatusAccepted, http.StatusOK}, res.Status, string(res.Body))
	ce = f.converge(tb, id)
	require.Equal(tb, computeenv.StatusDeleted, ce.Status, ce.StatusReason)
	return created, f.resourcesOf(tb, id)
}

type crashPlatform struct {
	name string
	body func(name string) any
}

var crashPlatforms = []crashPlatform{
	{"cloud", func(n string) any { return cloudCEBody(n) }},
	{"batch", func(n string) any { return batchCEBody(n) }},
}

// emulatorQuirks are calls whose repetition the emulator cannot answer
// like AWS; their cases are left out, with the reason.
var emulatorQuirks = map[string]string{
	// AWS answers NoSuchEntity (which both platforms treat as done); moto
	// 5.2.1 raises ValueError and answers HTTP 500.
	"RemoveRoleFromInstanceProfile": "moto answers a repeated RemoveRoleFromInstanceProfile with HTTP 500",
}

type crashCase struct {
	phase string
	rule  faultproxy.Rule
}

func (c crashCase) String() string {
	mode := "answer-lost"
	if c.rule.ErrorRate > 0 {
		mode = "failed"
	}
	return c.phase + "/" + c.rule.Operation + "/" + mode
}

// crashCases runs a clean create and delete and returns the fault cases:
// every mutating call of each phase with its answer lost, and every
// DynamoDB write also failing outright; plus what a clean CE owns.
func crashCases(tb testing.TB, pl crashPlatform) ([]crashCase, map[string]int) {
	tb.Helper()
	f, p := proxied(tb, 1)
	ops := map[string][]string{}
	cur := ""
	snap := func() {
		if cur != "" {
			ops[cur] = p.Operations()
		}
	}
	created, left := ceLifecycle(tb, f, p, pl.body("clean"), "clean", "", nil, func(phase string) {
		snap()
		cur = phase
		p.ResetStats()
	})
	snap()
	require.NotEmpty(tb, created)
	require.Empty(tb, left)
	var cases []crashCase
	for _, phase := range []string{"create", "delete"} {
		for _, op := range ops[phase] {
			if !mutating(op) || emulatorQuirks[op] != "" {
				continue
			}
			cases = append(cases, crashCase{phase, faultproxy.Rule{Operation: op, DropRate: 1, DropAfterForward: true, MaxFaults: 1}})
			if op == "PutItem" || op == "UpdateItem" || op == "TransactWriteItems" || op == "DeleteItem" {
				cases = append(cases, crashCase{phase, faultproxy.Rule{Service: "dynamodb", Operation: op, ErrorRate: 1, MaxFaults: 1}})
			}
		}
	}
	return cases, created
}

// runCrashCase injects one fault and checks convergence: the CE is
// AVAILABLE with exactly what a clean create owns, and deleting it leaves
// nothing.
func runCrashCase(tb testing.TB, pl crashPlatform, c crashCase, want map[string]int) {
	tb.Helper()
	f, p := proxied(tb, 1)
	name := "crash-" + strings.ToLower(c.rule.Operation)
	injected := 0
	got, left := ceLifecycle(tb, f, p, pl.body(name), name, c.phase, &c.rule, func(phase string) {
		if phase == "delete" && c.phase == "create" {
			st := p.Stats()[c.rule.Operation]
			injected = st.Dropped + st.Errors
		}
	})
	if c.phase == "delete" {
		st := p.Stats()[c.rule.Operation]
		injected = st.Dropped + st.Errors
	}
	require.Equal(tb, 1, injected, "the fault was injected")
	require.Equal(tb, want, got, "resources after create")
	require.Empty(tb, left, "orphans after delete")
}

// crashSample is how many cases per platform and phase TestCECrashAndRetry
// runs (evenly spread, rotating daily); CEFORGE_CRASH_ALL=1 runs every case
// (about 60, some 4 minutes).
const crashSample = 3

// TestCECrashAndRetry: for the mutating AWS calls of a CE's create and
// delete (and the DynamoDB writes around them), the call happens in AWS but
// its answer is lost (a crash right after the create call, before the
// record write), or the DynamoDB write fails outright. Retrying the request
// and the reconciler converge: the CE ends AVAILABLE with exactly the
// resources of a clean create, and its delete leaves nothing behind.
func TestCECrashAndRetry(t *testing.T) {
	day := time.Now().UTC().YearDay()
	for _, pl := range crashPlatforms {
		t.Run(pl.name, func(t *testing.T) {
			cases, want := crashCases(t, pl)
			for _, phase := range []string{"create", "delete"} {
				var of []crashCase
				for _, c := range cases {
					if c.phase == phase {
						of = append(of, c)
					}
				}
				stride := max(1, len(of)/crashSample)
				if os.Getenv("CEFORGE_CRASH_ALL") == "1" {
					stride = 1
				}
				for i := day % stride; i < len(of); i += stride {
					c := of[i]
					t.Run(c.String(), func(t *testing.T) { runCrashCase(t, pl, c, want) })
				}
			}
		})
	}
}

// liveInstancesOf lists the run's non-terminated instances (by run tag).
func (f *fixture) liveInstancesOf(tb testing.TB, runID string) []string {
	tb.Helper()
	out, err := f.EC2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + tags.RunID), Values: []string{runID}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}},
	}})
	require.NoError(tb, err)
	var ids []string
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			ids = append(ids, aws.ToString(i.InstanceId))
		}
	}
	sort.Strings(ids)
	return ids
}

// headJobsOf lists the head jobs of a run (by name, every status).
func (f *fixture) headJobsOf(tb testing.TB, ce computeenv.ComputeEnv, runID string) []string {
	tb.Helper()
	out, err := f.Batch.ListJobs(context.Background(), &batch.ListJobsInput{JobQueue: aws.String(forge.NamesFor(prefix, ce.ID).HeadQueue),
		Filters: []btypes.KeyValuesPair{{Name: aws.String("JOB_NAME"), Values: []string{batchce.HeadJobName(prefix, runID)}}}})
	require.NoError(tb, err)
	var ids []string
	for _, j := range out.JobSummaryList {
		ids = append(ids, aws.ToString(j.JobId))
	}
	return ids
}

// onlyRunOf returns the CE's single run (every status).
func (f *fixture) onlyRunOf(tb testing.TB, ceID string) run.Run {
	tb.Helper()
	runs := f.allRuns(tb, ceID)
	require.Len(tb, runs, 1, "exactly one run")
	return f.getRun(tb, runs[0].ID)
}

// TestLaunchCrashAndRetry: the launch's AWS call happens but its answer is
// lost (with and without SDK retries), or the record write after it
// fails. The client's retry with its Idempotency-Key, the reconciler and
// the sweeper converge to one run with one live head, recorded.
func TestLaunchCrashAndRetry(t *testing.T) {
	ctx := context.Background()
	launch := func(f *fixture, ceID, key string) (int, run.Run) {
		status, body, err := call(f.Router, http.MethodPost, "/runs", pipelineReq(ceID), "Idempotency-Key", key)
		require.NoError(t, err)
		var r run.Run
		if status < 300 {
			require.NoError(t, json.Unmarshal(body, &r))
		}
		return status, r
	}

	t.Run("cloud/answer-lost/no-sdk-retry", func(t *testing.T) {
		f, p := proxied(t, 1)
		ce := f.createCE(t, cloudCEBody("c1"))
		p.SetRules(faultproxy.Rule{Operation: "RunInstances", DropRate: 1, DropAfterForward: true, MaxFaults: 1})
		status, _ := launch(f, ce.ID, "k1")
		p.SetRules()
		// The client retries with its key: the same run, no second instance.
		status2, r2 := launch(f, ce.ID, "k1")
		require.Less(t, status2, 300, "retry answered %d (first %d)", status2, status)
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
		r := f.onlyRunOf(t, ce.ID)
		require.Equal(t, r.ID, r2.ID)
		live := f.liveInstancesOf(t, r.ID)
		if run.Terminal(r.Status) {
			// The launch was reported failed while its instance started:
			// the sweeper ends it once the run is past the grace period.
			require.Len(t, live, 1)
			sw := f.Sweeper.Sweeper()
			sw.Now = func() time.Time { return time.Now().Add(3 * time.Hour) }
			_, err := sw.Sweep(ctx, false, "test")
			require.NoError(t, err)
			require.Empty(t, f.liveInstancesOf(t, r.ID), "the orphan head is terminated by the sweeper")
		} else {
			require.Equal(t, []string{r.Backend.InstanceID}, live)
		}
	})

	t.Run("cloud/answer-lost/sdk-retry", func(t *testing.T) {
		f, p := proxied(t, 3)
		ce := f.createCE(t, cloudCEBody("c2"))
		p.SetRules(faultproxy.Rule{Operation: "RunInstances", DropRate: 1, DropAfterForward: true, MaxFaults: 1})
		status, r := launch(f, ce.ID, "k1")
		p.SetRules()
		require.Equal(t, http.StatusCreated, status)
		// The emulator ignores ClientToken, so the SDK's retry started a
		// second instance (AWS would return the first): the reconciler
		// keeps the recorded one and terminates the other.
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
		got := f.onlyRunOf(t, ce.ID)
		require.Equal(t, r.ID, got.ID)
		require.Equal(t, []string{got.Backend.InstanceID}, f.liveInstancesOf(t, r.ID))
	})

	t.Run("cloud/record-failed", func(t *testing.T) {
		f, p := proxied(t, 1)
		ce := f.createCE(t, cloudCEBody("c3"))
		// The run is created with a transaction (it counts as one of the
		// CE's active runs), the backend recorded with the second: that one fails.
		p.SetRules(faultproxy.Rule{Service: "dynamodb", Operation: "TransactWriteItems", ErrorRate: 1, MaxFaults: 1, Skip: 1})
		status, _, err := call(f.Router, http.MethodPost, "/runs", pipelineReq(ce.ID))
		require.NoError(t, err)
		p.SetRules()
		require.Equal(t, http.StatusInternalServerError, status)
		r := f.onlyRunOf(t, ce.ID)
		require.Nil(t, r.Backend)
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
		r = f.getRun(t, r.ID)
		require.NotNil(t, r.Backend, "the reconciler adopts the head by its run tag")
		require.Equal(t, []string{r.Backend.InstanceID}, f.liveInstancesOf(t, r.ID))
		byRef, err := f.Reconciler.Runs.ByBackend(ctx, store.KindInstance, r.Backend.InstanceID)
		require.NoError(t, err)
		require.Equal(t, r.ID, byRef.ID, "events of the adopted head find the run")
	})

	t.Run("batch/answer-lost/no-sdk-retry", func(t *testing.T) {
		f, p := proxied(t, 1)
		ce := f.createCE(t, batchCEBody("b1"))
		p.SetRules(faultproxy.Rule{Service: "batch", Operation: "submitjob", DropRate: 1, DropAfterForward: true, MaxFaults: 1})
		status, _ := launch(f, ce.ID, "k1")
		p.SetRules()
		status2, r2 := launch(f, ce.ID, "k1")
		require.Less(t, status2, 300, "retry answered %d (first %d)", status2, status)
		r := f.onlyRunOf(t, ce.ID)
		require.Equal(t, r.ID, r2.ID)
		require.Len(t, f.headJobsOf(t, ce, r.ID), 1, "one head job")
	})

	t.Run("batch/answer-lost/sdk-retry", func(t *testing.T) {
		f, p := proxied(t, 3)
		ce := f.createCE(t, batchCEBody("b2"))
		p.SetRules(faultproxy.Rule{Service: "batch", Operation: "submitjob", DropRate: 1, DropAfterForward: true, MaxFaults: 1})
		status, r := launch(f, ce.ID, "k1")
		p.SetRules()
		require.Equal(t, http.StatusCreated, status)
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
		got := f.onlyRunOf(t, ce.ID)
		require.Equal(t, r.ID, got.ID)
		heads := f.headJobsOf(t, ce, r.ID)
		require.Contains(t, heads, got.Backend.JobID)
		// SubmitJob has no client token: the launcher submits without SDK
		// retries and looks the head up by name after a lost answer.
		require.Len(t, heads, 1, "a lost SubmitJob answer must not start a second head")
	})

	t.Run("batch/record-failed", func(t *testing.T) {
		f, p := proxied(t, 1)
		ce := f.createCE(t, batchCEBody("b3"))
		p.SetRules(faultproxy.Rule{Service: "dynamodb", Operation: "TransactWriteItems", ErrorRate: 1, MaxFaults: 1, Skip: 1})
		status, _, err := call(f.Router, http.MethodPost, "/runs", pipelineReq(ce.ID))
		require.NoError(t, err)
		p.SetRules()
		require.Equal(t, http.StatusInternalServerError, status)
		r := f.onlyRunOf(t, ce.ID)
		require.Nil(t, r.Backend)
		// The launcher waits a minute before adopting (the launch may be in flight).
		l := f.Reconciler.Runs.Launchers[computeenv.PlatformBatch].(*batchce.Launcher)
		l.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
		r = f.getRun(t, r.ID)
		require.NotNil(t, r.Backend, "the reconciler adopts the head by its name")
		require.Equal(t, f.headJobsOf(t, ce, r.ID), []string{r.Backend.JobID})
		byRef, err := f.Reconciler.Runs.ByBackend(ctx, store.KindJob, r.Backend.JobID)
		require.NoError(t, err)
		require.Equal(t, r.ID, byRef.ID)
	})
}

// TestIdempotentLaunchUnderConcurrency: 50 clients send the same launch
// with the same Idempotency-Key at once, on each platform: one run, one
// head, every client gets that run.
func TestIdempotentLaunchUnderConcurrency(t *testing.T) {
	f, _ := proxied(t, 3)
	for _, pl := range []struct {
		name string
		body any
	}{{"cloud", cloudCEBody("idem-cloud")}, {"batch", batchCEBody("idem-batch")}} {
		t.Run(pl.name, func(t *testing.T) {
			ce := f.createCE(t, pl.body)
			f.Calls.Reset()
			const n = 50
			ids := make([]string, n)
			codes := make([]int, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					<-start
					status, body, err := call(f.Router, http.MethodPost, "/runs", pipelineReq(ce.ID), "Idempotency-Key", "same-key-"+pl.name)
					codes[i] = status
					if err == nil && status < 300 {
						var r run.Run
						if json.Unmarshal(body, &r) == nil {
							ids[i] = r.ID
						}
					}
				}(i)
			}
			close(start)
			wg.Wait()
			for i := range codes {
				require.Contains(t, []int{http.StatusCreated, http.StatusOK}, codes[i], "client %d", i)
			}
			created := 0
			for _, c := range codes {
				if c == http.StatusCreated {
					created++
				}
			}
			require.Equal(t, 1, created, "one client creates, the others replay")
			r := f.onlyRunOf(t, ce.ID)
			for i, id := range ids {
				require.Equal(t, r.ID, id, "client %d", i)
			}
			if pl.name == "cloud" {
				require.Equal(t, 1, f.Calls.Count("EC2.RunInstances"))
				require.Equal(t, []string{r.Backend.InstanceID}, f.liveInstancesOf(t, r.ID))
			} else {
				require.Equal(t, 1, f.Calls.Count("Batch.SubmitJob"))
				require.Equal(t, []string{r.Backend.JobID}, f.headJobsOf(t, ce, r.ID))
			}
		})
	}
}

var _ = fmt.Sprint
