package faultproxy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/faultproxy"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// clients returns EC2 and DynamoDB clients sending through the proxy, one attempt per call.
func clients(t *testing.T, env *testenv.Env, p *faultproxy.Proxy) (*ec2.Client, *dynamodb.Client) {
	cfg := env.AWS.Config("")
	cfg.BaseEndpoint = aws.String(p.URL())
	// Exactly one attempt per call: the tests count what the proxy injects.
	cfg.RetryMaxAttempts = 1
	return ec2.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg)
}

func newProxy(t *testing.T, env *testenv.Env, rules ...faultproxy.Rule) *faultproxy.Proxy {
	p, err := faultproxy.New(env.Endpoint, rules...)
	require.NoError(t, err)
	require.NoError(t, p.Start())
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func createVolume(t *testing.T, c *ec2.Client) string {
	out, err := c.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)})
	require.NoError(t, err)
	return aws.ToString(out.VolumeId)
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestTokenBucketThrottlesEC2AndJSON(t *testing.T) {
	env := testenv.New(t)
	p := newProxy(t, env,
		faultproxy.Rule{Operation: "DeleteVolume", Burst: 3, RefillPerSec: 0.001},
		faultproxy.Rule{Service: "dynamodb", Operation: "ListTables", Burst: 1, RefillPerSec: 0.001},
	)
	ec2c, ddb := clients(t, env, p)
	ctx := context.Background()

	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, createVolume(t, ec2c))
	}
	var throttled int
	for _, id := range ids {
		_, err := ec2c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)})
		if err != nil {
			require.Equal(t, "RequestLimitExceeded", code(err))
			var re interface{ HTTPStatusCode() int }
			require.ErrorAs(t, err, &re)
			require.Equal(t, 503, re.HTTPStatusCode())
			throttled++
		}
	}
	require.Equal(t, 2, throttled)
	st := p.Stats()
	require.Equal(t, faultproxy.OpStats{Forwarded: 3, Throttled: 2}, st["DeleteVolume"])
	require.Equal(t, 5, st["CreateVolume"].Forwarded)

	_, err := ddb.ListTables(ctx, &dynamodb.ListTablesInput{})
	require.NoError(t, err)
	_, err = ddb.ListTables(ctx, &dynamodb.ListTablesInput{})
	require.Equal(t, "ThrottlingException", code(err))
}

func TestTimeScaleRefillsFaster(t *testing.T) {
	env := testenv.New(t)
	p := newProxy(t, env, faultproxy.Rule{Operation: "DescribeVolumes", Burst: 1, RefillPerSec: 1, StartEmpty: true})
	p.SetTimeScale(50) // one AWS second is 20ms
	ec2c, _ := clients(t, env, p)
	ctx := context.Background()
	_, err := ec2c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
	require.Equal(t, "RequestLimitExceeded", code(err), "the bucket starts empty")
	time.Sleep(40 * time.Millisecond)
	_, err = ec2c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
	require.NoError(t, err)
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name     string
		rule     faultproxy.Rule
		wantCode string
		wantErr  bool
		stats    faultproxy.OpStats
		created  int // volumes that exist afterwards
	}{
		{"server error", faultproxy.Rule{Operation: "CreateVolume", ErrorRate: 1, MaxFaults: 1}, "InternalError", true, faultproxy.OpStats{Errors: 1}, 0},
		{"503", faultproxy.Rule{Operation: "CreateVolume", ErrorRate: 1, ErrorStatus: 503}, "Unavailable", true, faultproxy.OpStats{Errors: 1}, 0},
		{"drop before", faultproxy.Rule{Operation: "CreateVolume", DropRate: 1}, "", true, faultproxy.OpStats{Dropped: 1}, 0},
		{"drop after forward", faultproxy.Rule{Operation: "CreateVolume", DropRate: 1, DropAfterForward: true}, "", true, faultproxy.OpStats{Dropped: 1}, 1},
		{"latency only", faultproxy.Rule{Operation: "CreateVolume", Latency: 20 * time.Millisecond}, "", false, faultproxy.OpStats{Forwarded: 1}, 1},
	}
	// One emulator state for all cases (a reset costs seconds): each case
	// creates volumes of its own size.
	env := testenv.New(t)
	p := newProxy(t, env)
	ec2c, _ := clients(t, env, p)
	direct := ec2.NewFromConfig(env.AWS.Config(""))
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.SetRules(tc.rule)
			p.ResetStats()
			size := int32(i + 1)
			ctx := context.Background()
			_, err := ec2c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(size)})
			if tc.wantErr {
				require.Error(t, err)
				require.Equal(t, tc.wantCode, code(err))
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.stats, p.Stats()["CreateVolume"])
			out, err := direct.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("size"), Values: []string{fmt.Sprint(size)}}}})
			require.NoError(t, err)
			require.Len(t, out.Volumes, tc.created)
		})
	}
}

func TestMaxFaultsThenForward(t *testing.T) {
	env := testenv.New(t)
	p := newProxy(t, env, faultproxy.Rule{ErrorRate: 1, MaxFaults: 2})
	ec2c, _ := clients(t, env, p)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		_, err := ec2c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
		require.Error(t, err)
	}
	_, err := ec2c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
	require.NoError(t, err)
	require.Equal(t, faultproxy.OpStats{Forwarded: 1, Errors: 2}, p.Stats()["DescribeVolumes"])
	require.Equal(t, 3, p.Stats()["DescribeVolumes"].Total())
}

func TestSkipThenFault(t *testing.T) {
	env := testenv.New(t)
	p := newProxy(t, env, faultproxy.Rule{ErrorRate: 1, MaxFaults: 1, Skip: 2})
	ec2c, _ := clients(t, env, p)
	ctx := context.Background()
	for i, fails := range []bool{false, false, true, false} {
		_, err := ec2c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
		require.Equal(t, fails, err != nil, "call %d: %v", i, err)
	}
	require.Equal(t, faultproxy.OpStats{Forwarded: 3, Errors: 1}, p.Stats()["DescribeVolumes"])
}

func TestNewRejectsBadTarget(t *testing.T) {
	_, err := faultproxy.New("not a url")
	require.Error(t, err)
}
