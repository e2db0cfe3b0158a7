package cloudce_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/store"
)

// world counts what exists, to prove a refused request created nothing.
type world struct {
	Roles, Profiles, Instances, CEs, Runs int
}

func (f *fixture) world(t *testing.T) world {
	t.Helper()
	ctx := context.Background()
	roles, err := f.IAM.ListRoles(ctx, &iam.ListRolesInput{})
	require.NoError(t, err)
	profiles, err := f.IAM.ListInstanceProfiles(ctx, &iam.ListInstanceProfilesInput{})
	require.NoError(t, err)
	inst, err := f.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	require.NoError(t, err)
	n := 0
	for _, r := range inst.Reservations {
		n += len(r.Instances)
	}
	ces, err := f.Store.List(ctx, store.Query{Kind: store.KindCE, Limit: store.MaxPageSize})
	require.NoError(t, err)
	runs, err := f.Store.List(ctx, store.Query{Kind: store.KindRun, Limit: store.MaxPageSize})
	require.NoError(t, err)
	var a, b []map[string]any
	require.NoError(t, ces.Decode(&a))
	require.NoError(t, runs.Decode(&b))
	return world{Roles: len(roles.Roles), Profiles: len(profiles.InstanceProfiles), Instances: n, CEs: len(a), Runs: len(b)}
}

func TestInvalidRequestsCreateNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Account fixtures: another VPC with a subnet and a security group, a
	// bucket in another region, the arm64 AMI.
	vpc, err := f.EC2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.9.0.0/16")})
	require.NoError(t, err)
	otherVPC := aws.ToString(vpc.Vpc.VpcId)
	sn, err := f.EC2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(otherVPC), CidrBlock: aws.String("10.9.1.0/24")})
	require.NoError(t, err)
	otherSubnet := aws.ToString(sn.Subnet.SubnetId)
	sg, err := f.EC2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("other"), Description: aws.String("other"), VpcId: aws.String(otherVPC)})
	require.NoError(t, err)
	otherSG := aws.ToString(sg.GroupId)
	_, err = f.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("ceforge-eu"), CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraintEuWest1}})
	require.NoError(t, err)
	// A bucket that exists, in the region, but outside the deployment's
	// allowed buckets (ceforge-*): only that rule refuses it.
	_, err = f.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("other-team")})
	require.NoError(t, err)
	armAMI, err := f.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id")})
	require.NoError(t, err)
	ce := f.createCE(t, ceBody()) // spotStudios off

	noise := make([]byte, 48<<10)
	_, _ = rand.Read(noise)
	bigConfig := base64.StdEncoding.EncodeToString(noise)[:60<<10]

	type cloud = map[string]any
	ceCase := func(c cloud, top ...func(map[string]any)) map[string]any {
		return ceBody(func(b map[string]any, cl map[string]any) {
			for k, v := range c {
				cl[k] = v
			}
			for _, m := range top {
				m(b)
			}
		})
	}
	runCase := func(m func(map[string]any)) map[string]any {
		b := pipelineBody(ce.ID)
		m(b)
		return b
	}
	cases := []struct {
		name   string
		path   string
		body   map[string]any
		status int
		field  string
	}{
		{"unsupported region", "/compute-envs", ceCase(nil, func(b map[string]any) { b["region"] = "ap-south-1" }), 400, "region"},
		{"work dir not on S3", "/compute-envs", ceCase(nil, func(b map[string]any) { b["workDir"] = "/mnt/work" }), 400, "workDir"},
		{"malformed instance type", "/compute-envs", ceCase(cloud{"instanceType": "M6I LARGE"}), 400, "cloud.instanceType"},
		{"unknown instance type", "/compute-envs", ceCase(cloud{"instanceType": "zz9.huge"}), 422, "cloud.instanceType"},
		{"x86 instance type with Graviton", "/compute-envs", ceCase(cloud{"instanceType": "m6i.xlarge", "arm64Enabled": true}), 422, "cloud.instanceType"},
		{"GPU flag on a type without GPU", "/compute-envs", ceCase(cloud{"instanceType": "m6i.xlarge", "gpuEnabled": true}), 422, "cloud.instanceType"},
		{"GPU with Graviton", "/compute-envs", ceCase(cloud{"gpuEnabled": true, "arm64Enabled": true}), 400, "cloud.gpuEnabled"},
		{"unknown AMI", "/compute-envs", ceCase(cloud{"imageId": "ami-0123456789abcdef0"}), 422, "cloud.imageId"},
		{"AMI of the other architecture", "/compute-envs", ceCase(cloud{"imageId": aws.ToString(armAMI.Parameter.Value)}), 422, "cloud.imageId"},
		{"unknown subnet", "/compute-envs", ceCase(cloud{"subnetIds": []string{ce.Cloud.SubnetIDs[0], "subnet-0123456789abcdef0"}}), 422, "cloud.subnetIds[1]"},
		{"subnet outside the VPC", "/compute-envs", ceCase(cloud{"vpcId": ce.Cloud.VpcID, "subnetIds": []string{otherSubnet}}), 422, "cloud.subnetIds[0]"},
		{"duplicate subnet", "/compute-envs", ceCase(cloud{"subnetIds": []string{ce.Cloud.SubnetIDs[0], ce.Cloud.SubnetIDs[0]}}), 400, "cloud.subnetIds[1]"},
		{"unknown VPC", "/compute-envs", ceCase(cloud{"vpcId": "vpc-0123456789abcdef0"}), 422, "cloud.vpcId"},
		{"unknown security group", "/compute-envs", ceCase(cloud{"securityGroups": []string{"sg-0123456789abcdef0"}}), 422, "cloud.securityGroups[0]"},
		{"security group of another VPC", "/compute-envs", ceCase(cloud{"securityGroups": []string{otherSG}}), 422, "cloud.securityGroups[0]"},
		{"unknown key pair", "/compute-envs", ceCase(cloud{"ec2KeyPair": "nobody"}), 422, "cloud.ec2KeyPair"},
		{"boot disk smaller than the AMI", "/compute-envs", ceCase(cloud{"ebsBootSize": 8}), 422, "cloud.ebsBootSize"},
		{"negative boot disk", "/compute-envs", ceCase(cloud{"ebsBootSize": -1}), 400, "cloud.ebsBootSize"},
		{"max run hours too long", "/compute-envs", ceCase(cloud{"maxRunHours": 100000}), 400, "cloud.maxRunHours"},
		{"missing work-dir bucket", "/compute-envs", ceCase(nil, func(b map[string]any) { b["workDir"] = "s3://ceforge-no-such-bucket/w" }), 422, "workDir"},
		{"work-dir bucket in another region", "/compute-envs", ceCase(nil, func(b map[string]any) { b["workDir"] = "s3://ceforge-eu/w" }), 422, "workDir"},
		{"unknown instance profile", "/compute-envs", ceCase(cloud{"instanceProfileArn": "arn:aws:iam::123456789012:instance-profile/nope"}), 422, "cloud.instanceProfileArn"},
		{"malformed instance profile", "/compute-envs", ceCase(cloud{"instanceProfileArn": "arn:aws:iam::123456789012:role/nope"}), 400, "cloud.instanceProfileArn"},
		{"work dir outside the allowed buckets", "/compute-envs", ceCase(nil, func(b map[string]any) { b["workDir"] = "s3://other-team/w" }), 400, "workDir"},
		{"allowBuckets outside the allowed buckets", "/compute-envs", ceCase(cloud{"allowBuckets": []string{"s3://" + otherBucket, "s3://other-team/x"}}), 400, "cloud.allowBuckets[1]"},
		{"run work dir outside the allowed buckets", "/runs", runCase(func(b map[string]any) { b["workDir"] = "s3://other-team/w" }), 400, "workDir"},
		{"allowed bucket not an S3 URI", "/compute-envs", ceCase(cloud{"allowBuckets": []string{"https://x"}}), 400, "cloud.allowBuckets[0]"},
		{"batch options on a cloud CE", "/compute-envs", ceCase(nil, func(b map[string]any) { b["batch"] = map[string]any{"headQueue": "q"} }), 400, "batch"},
		{"Spot studio on a CE without Spot", "/runs", map[string]any{"kind": "studio", "computeEnvId": ce.ID, "studio": map[string]any{"image": "jupyter/base:1", "spot": true}}, 400, "studio.spot"},
		{"head CPUs on a cloud CE", "/runs", runCase(func(b map[string]any) { b["headJobCpus"] = 4 }), 400, "headJobCpus"},
		{"work dir in a bucket the role cannot write", "/runs", runCase(func(b map[string]any) { b["workDir"] = "s3://ceforge-someone-else/w" }), 400, "workDir"},
		{"user-data over 16 KB even compressed", "/runs", runCase(func(b map[string]any) { b["configText"] = bigConfig }), 400, "configText"},
		{"unknown compute environment", "/runs", runCase(func(b map[string]any) { b["computeEnvId"] = "zzzzzzzzzzzzzz" }), 400, "computeEnvId"},
	}
	before := f.world(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := f.Do(t, http.MethodPost, tc.path, tc.body)
			require.Equal(t, tc.status, res.Status, string(res.Body))
			_, field, msg := res.Error(t)
			require.Equal(t, tc.field, field, msg)
			require.NotEmpty(t, msg)
		})
	}
	require.Equal(t, before, f.world(t), "refused requests create nothing")
}
