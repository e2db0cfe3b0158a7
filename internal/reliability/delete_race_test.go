package reliability_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/tags"
	"github.com/ceforge/ceforge/internal/testenv"
)

// gatedDB holds the first write that creates a run until released: a
// launch paused between reading its CE and recording its run.
type gatedDB struct {
	store.DynamoAPI
	held, release chan struct{}
	once          bool
}

func (g *gatedDB) wait(items ...map[string]dtypes.AttributeValue) {
	for _, it := range items {
		if pk, ok := it["pk"].(*dtypes.AttributeValueMemberS); ok && strings.HasPrefix(pk.Value, "RUN#") && !g.once {
			g.once = true
			close(g.held)
			<-g.release
		}
	}
}

func (g *gatedDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	g.wait(in.Item)
	return g.DynamoAPI.PutItem(ctx, in, opts...)
}

func (g *gatedDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	for _, it := range in.TransactItems {
		if it.Put != nil {
			g.wait(it.Put.Item)
		}
	}
	return g.DynamoAPI.TransactWriteItems(ctx, in, opts...)
}

// lostIndex is a run listing that does not show runs yet (the index behind
// it lags the table).
type lostIndex struct{ computeenv.RunTracker }

func (lostIndex) ActiveRuns(context.Context, string) ([]string, error) { return nil, nil }

// TestLaunchAndDeleteExcludeEachOther: no run starts in a compute
// environment a concurrent delete is tearing down, and a delete without
// force never tears down a CE with a run: one conditional write decides.
func TestLaunchAndDeleteExcludeEachOther(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	// A launch that read its CE as AVAILABLE records its run only after a
	// delete went through: it is refused, and nothing starts.
	ce := f.createCE(t, cloudCEBody("race"))
	gate := &gatedDB{DynamoAPI: f.DynamoDB, held: make(chan struct{}), release: make(chan struct{})}
	runs := *f.API.Runs
	runs.Store = store.New(gate, testenv.Table)
	*f.API.Runs = runs
	type answer struct {
		status int
		body   []byte
	}
	launched := make(chan answer, 1)
	go func() {
		status, body, _ := call(f.Router, http.MethodPost, "/runs", pipelineReq(ce.ID))
		launched <- answer{status, body}
	}()
	<-gate.held
	res := f.Do(t, http.MethodDelete, "/compute-envs/"+ce.ID, nil)
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	close(gate.release)
	got := <-launched
	require.Equal(t, http.StatusConflict, got.status, string(got.body))
	var e struct{ Error struct{ Code string } }
	require.NoError(t, json.Unmarshal(got.body, &e))
	require.Equal(t, "compute_env_not_available", e.Error.Code)
	require.Empty(t, f.allRuns(t, ce.ID), "no run recorded")
	out, err := f.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:" + tags.CEID), Values: []string{ce.ID}}}})
	require.NoError(t, err)
	require.Empty(t, out.Reservations, "no head started")

	// A run recorded first keeps a delete without force out, even when the
	// listing of runs does not show it yet; the run's end lets it through.
	runs.Store = f.Store
	*f.API.Runs = runs
	ce2 := f.createCE(t, cloudCEBody("race2"))
	r := f.getRun(t, launchOne(t, f, ce2.ID).ID)
	f.API.ComputeEnvs.Runs = lostIndex{f.API.ComputeEnvs.Runs}
	res = f.Do(t, http.MethodDelete, "/compute-envs/"+ce2.ID, nil)
	require.Equal(t, http.StatusConflict, res.Status, string(res.Body))
	code, _, _ := res.Error(t)
	require.Equal(t, "active_runs", code)
	require.Equal(t, computeenv.StatusAvailable, f.settle(t, ce2.ID).Status)
	ok, err := f.API.Runs.Transition(ctx, &r, run.Update{Status: run.StatusFailed, Reason: "test"})
	require.NoError(t, err)
	require.True(t, ok)
	res = f.Do(t, http.MethodDelete, "/compute-envs/"+ce2.ID, nil)
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
}

func launchOne(t *testing.T, f *fixture, ceID string) run.Run {
	t.Helper()
	res := f.Do(t, http.MethodPost, "/runs", pipelineReq(ceID))
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	return r
}
