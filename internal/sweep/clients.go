package sweep

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ceforge/ceforge/internal/awsclient"
)

// EC2API is the part of the EC2 client the sweeper calls.
type EC2API interface {
	DescribeVolumes(context.Context, *ec2.DescribeVolumesInput, ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DeleteVolume(context.Context, *ec2.DeleteVolumeInput, ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeInstanceAttribute(context.Context, *ec2.DescribeInstanceAttributeInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceAttributeOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
}

// BatchAPI is the part of the Batch client the sweeper calls.
type BatchAPI interface {
	DescribeJobQueues(context.Context, *batch.DescribeJobQueuesInput, ...func(*batch.Options)) (*batch.DescribeJobQueuesOutput, error)
	ListJobs(context.Context, *batch.ListJobsInput, ...func(*batch.Options)) (*batch.ListJobsOutput, error)
	DescribeJobs(context.Context, *batch.DescribeJobsInput, ...func(*batch.Options)) (*batch.DescribeJobsOutput, error)
	TerminateJob(context.Context, *batch.TerminateJobInput, ...func(*batch.Options)) (*batch.TerminateJobOutput, error)
}

// Target is one account and region to sweep: the compute environments of
// one role in one region.
type Target struct {
	Region      string
	Credentials awsclient.Credentials
}

// Clients builds the clients of one target.
type Clients func(ctx context.Context, t Target) (EC2API, BatchAPI, error)

// FactoryClients builds clients from the factory (the user's role when the
// target has one) with the sweeper's retryer, which hands throttles back
// to the limiter. endpoint, when set, overrides the EC2 endpoint (the
// throttling proxy in tests and benchmarks).
func FactoryClients(f *awsclient.Factory, endpoint string) Clients {
	return func(_ context.Context, t Target) (EC2API, BatchAPI, error) {
		cfg := f.ForRole(t.Region, t.Credentials)
		attempts := 0
		if cfg.Retryer != nil {
			attempts = cfg.Retryer().MaxAttempts()
		}
		retryer := NewRetryer(attempts)
		ec2c := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
			o.Retryer = retryer()
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
		})
		batchc := batch.NewFromConfig(cfg, func(o *batch.Options) { o.Retryer = retryer() })
		return ec2c, batchc, nil
	}
}
