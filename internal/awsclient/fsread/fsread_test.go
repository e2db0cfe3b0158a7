package fsread

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	fsxtypes "github.com/aws/aws-sdk-go-v2/service/fsx/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// The reader's answers match the SDK's view of the same file systems in
// the emulator.
func TestReadsWhatTheSDKCreated(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	cfg := env.AWS.Config(testenv.Region)
	subnets, err := ec2.NewFromConfig(cfg).DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	require.NoError(t, err)
	sn := subnets.Subnets[0]

	fsc := efs.NewFromConfig(cfg)
	fs, err := fsc.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("t")})
	require.NoError(t, err)
	_, err = fsc.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: fs.FileSystemId, SubnetId: sn.SubnetId})
	require.NoError(t, err)

	r := newReader(cfg)
	got, err := r.EFS(ctx, aws.ToString(fs.FileSystemId))
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Equal(t, "available", got.State)
	require.Len(t, got.MountTargets, 1)
	mt := got.MountTargets[0]
	require.Equal(t, aws.ToString(sn.SubnetId), mt.SubnetID)
	require.Equal(t, aws.ToString(sn.AvailabilityZone), mt.AvailabilityZone)
	require.Equal(t, aws.ToString(sn.VpcId), mt.VpcID)

	missing, err := r.EFS(ctx, "fs-0123456789abcdef0")
	require.NoError(t, err)
	require.Nil(t, missing)

	fx := fsx.NewFromConfig(cfg)
	var dns []string
	for i := 0; i < 3; i++ {
		out, err := fx.CreateFileSystem(ctx, &fsx.CreateFileSystemInput{FileSystemType: fsxtypes.FileSystemTypeLustre, StorageCapacity: aws.Int32(1200),
			SubnetIds: []string{aws.ToString(sn.SubnetId)}, LustreConfiguration: &fsxtypes.CreateFileSystemLustreConfiguration{DeploymentType: fsxtypes.LustreDeploymentTypeScratch2}})
		require.NoError(t, err)
		dns = append(dns, aws.ToString(out.FileSystem.DNSName))
	}
	r.pageSize = 1 // every file system on its own page
	for _, d := range dns {
		got, err := r.FSxByDNSName(ctx, d)
		require.NoError(t, err)
		require.NotNil(t, got, d)
		require.Equal(t, "LUSTRE", got.Type)
		require.Contains(t, d, got.ID)
	}
	none, err := r.FSxByDNSName(ctx, "fs-0123456789abcdef0.fsx.us-east-1.amazonaws.com")
	require.NoError(t, err)
	require.Nil(t, none)
}

// Errors keep AWS's code for callers (smithy.APIError); throttling and 5xx
// are retried, refusals are not.
func TestErrors(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		switch {
		case r.Header.Get("X-Amz-Target") != "": // FSx: JSON 1.1
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"com.amazonaws#AccessDeniedException","Message":"no"}`))
		case calls == 1:
			w.Header().Set("X-Amzn-Errortype", "ThrottlingException:http://internal")
			w.WriteHeader(429)
		default:
			_, _ = w.Write([]byte(`{"FileSystems":[{"FileSystemId":"fs-1","LifeCycleState":"creating"}]}`))
		}
	}))
	defer srv.Close()
	env := testenv.New(t)
	cfg := env.AWS.Config(testenv.Region)
	cfg.BaseEndpoint = aws.String(srv.URL)
	r := newReader(cfg)
	r.client.Attempts = 3
	_, err := r.EFS(context.Background(), "fs-1")
	require.NoError(t, err)
	require.Equal(t, 3, calls, "throttled once, then file systems and mount targets")

	_, err = r.FSxByDNSName(context.Background(), "x")
	var ae smithy.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "AccessDeniedException", ae.ErrorCode())
	require.Equal(t, "no", ae.ErrorMessage())
	require.Equal(t, 4, calls, "a refusal is not retried")
}
