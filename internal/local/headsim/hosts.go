package headsim

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// batchHost returns the container instance a job of queue runs on: an
// emulator instance registered in the ECS cluster of the queue's compute
// environment, as Batch's ECS agent registers a host it launches (one per
// cluster, reused). Studios are reached through it: the API asks ECS which
// EC2 instance it is. "" when the emulator cannot say (the caller keeps a
// made-up ARN, as for pipelines).
func (s *Simulator) batchHost(ctx context.Context, queue string) string {
	cluster, err := s.clusterOf(ctx, queue)
	if err == nil {
		s.mu.Lock()
		ci, ok := s.hosts[cluster]
		s.mu.Unlock()
		if ok {
			return ci
		}
		if ci, err = s.registerHost(ctx, cluster); err == nil {
			s.mu.Lock()
			s.hosts[cluster] = ci
			s.mu.Unlock()
			return ci
		}
	}
	s.opts.Log.Warn("head simulator: no Batch host for the studio", "queue", queue, "error", err.Error())
	return ""
}

// clusterOf is the ECS cluster of the first compute environment of queue.
func (s *Simulator) clusterOf(ctx context.Context, queue string) (string, error) {
	q, err := s.batch.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: []string{queue}})
	if err != nil {
		return "", err
	}
	if len(q.JobQueues) == 0 || len(q.JobQueues[0].ComputeEnvironmentOrder) == 0 {
		return "", fmt.Errorf("job queue %s has no compute environment", queue)
	}
	c, err := s.batch.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{
		ComputeEnvironments: []string{aws.ToString(q.JobQueues[0].ComputeEnvironmentOrder[0].ComputeEnvironment)},
	})
	if err != nil {
		return "", err
	}
	if len(c.ComputeEnvironments) == 0 || aws.ToString(c.ComputeEnvironments[0].EcsClusterArn) == "" {
		return "", fmt.Errorf("the compute environment of job queue %s has no ECS cluster", queue)
	}
	return aws.ToString(c.ComputeEnvironments[0].EcsClusterArn), nil
}

// registerHost starts an instance (untagged: no ceforge path takes it for
// one of its own) and registers it as a container instance of cluster.
func (s *Simulator) registerHost(ctx context.Context, cluster string) (string, error) {
	imgs, err := s.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil {
		return "", err
	}
	if len(imgs.Images) == 0 {
		return "", fmt.Errorf("the emulator has no image to start a host from")
	}
	ran, err := s.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: imgs.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: ec2types.InstanceTypeM5Large,
	})
	if err != nil {
		return "", err
	}
	reg, err := s.ecs.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{
		Cluster: aws.String(cluster), InstanceIdentityDocument: aws.String(`{"instanceId":"` + aws.ToString(ran.Instances[0].InstanceId) + `"}`),
	})
	if err != nil {
		return "", err
	}
	return aws.ToString(reg.ContainerInstance.ContainerInstanceArn), nil
}
