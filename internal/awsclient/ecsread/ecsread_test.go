package ecsread_test

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/awsclient/ecsread"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// The reader names the EC2 instance the SDK registered as a container
// instance in the emulator; what ECS does not know is "" without error.
func TestReadsWhatTheSDKRegistered(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	cfg := env.AWS.Config(testenv.Region)
	ran, err := ec2.NewFromConfig(cfg).RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-12c6146b"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: ec2types.InstanceTypeM5Large})
	require.NoError(t, err)
	iid := aws.ToString(ran.Instances[0].InstanceId)
	ec := ecs.NewFromConfig(cfg)
	_, err = ec.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("ceforge-ce1-head_Batch_0a1b2c3d")})
	require.NoError(t, err)
	reg, err := ec.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{
		Cluster: aws.String("ceforge-ce1-head_Batch_0a1b2c3d"), InstanceIdentityDocument: aws.String(`{"instanceId":"` + iid + `"}`),
	})
	require.NoError(t, err)
	arn := aws.ToString(reg.ContainerInstance.ContainerInstanceArn)
	sdk, err := ec.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("ceforge-ce1-head_Batch_0a1b2c3d"), ContainerInstances: []string{arn}})
	require.NoError(t, err)
	require.Equal(t, iid, aws.ToString(sdk.ContainerInstances[0].Ec2InstanceId))

	r := ecsread.New(cfg)
	got, err := r.EC2InstanceOf(ctx, arn)
	require.NoError(t, err)
	require.Equal(t, iid, got)

	cluster, _ := ecsread.ClusterOf(arn)
	gone, err := r.EC2InstanceOf(ctx, "arn:aws:ecs:us-east-1:123456789012:container-instance/"+cluster+"/0123456789abcdef0123456789abcdef")
	require.NoError(t, err)
	require.Empty(t, gone, "a container instance ECS does not know")
	noCluster, err := r.EC2InstanceOf(ctx, "arn:aws:ecs:us-east-1:123456789012:container-instance/no-such-cluster/0123456789abcdef")
	require.NoError(t, err)
	require.Empty(t, noCluster, "a cluster that is gone")
	_, err = r.EC2InstanceOf(ctx, "TBD")
	require.Error(t, err)
}

func TestClusterOf(t *testing.T) {
	for _, c := range []struct {
		arn, cluster string
		ok           bool
	}{
		{"arn:aws:ecs:us-east-1:123456789012:container-instance/ceforge-x-head_Batch_3f1e/8d2c4b6a0e9f4a1b", "ceforge-x-head_Batch_3f1e", true},
		{"arn:aws-us-gov:ecs:us-gov-west-1:123456789012:container-instance/c/1", "c", true},
		{"arn:aws:ecs:us-east-1:123456789012:container-instance/8d2c4b6a0e9f4a1b", "", false}, // old format: no cluster
		{"arn:aws:ecs:us-east-1:123456789012:task/c/1", "", false},
		{"arn:aws:ecs:us-east-1:123456789012:container-instance/c/1/2", "", false},
		{"TBD", "", false},
		{"", "", false},
	} {
		got, ok := ecsread.ClusterOf(c.arn)
		require.Equal(t, c.ok, ok, c.arn)
		require.Equal(t, c.cluster, got, c.arn)
	}
}
