package batchce

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	etypes "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
)

// AWS Batch's fixed quotas per account and region.
const (
	JobQueueQuota   = 50
	ComputeEnvQuota = 50
)

// checkForgeInputs checks, read-only and before anything is created, what
// a forge-mode CE names in the account and what it would add to it: the
// custom AMI and key pair exist (the AMI for the compute architecture), an
// existing EFS has mount targets where the CE's subnets are, an FSx DNS
// name is an FSx for Lustre file system of the CE's VPC, and the Batch
// quotas leave room for the compute environments and queues it forges.
func (p *Provisioner) checkForgeInputs(ctx context.Context, cfg aws.Config, ce *computeenv.ComputeEnv) error {
	f := ce.Batch.Forge
	e := ec2.NewFromConfig(cfg)
	if err := checkImage(ctx, e, f); err != nil {
		return err
	}
	if err := checkKeyPair(ctx, e, f.EC2KeyPair); err != nil {
		return err
	}
	if f.EfsID != "" || f.FsxName != "" {
		if p.FileSystems == nil {
			return errors.New("batch: no file system reader wired to validate EFS/FSx options")
		}
		fs := p.FileSystems(cfg)
		if f.EfsID != "" {
			if err := checkEFS(ctx, fs, e, f); err != nil {
				return err
			}
		}
		if f.FsxName != "" {
			if err := checkFSx(ctx, fs, f); err != nil {
				return err
			}
		}
	}
	return checkQuotas(ctx, batch.NewFromConfig(cfg), ce.Region, forge.NewDesign(p.Prefix, ce))
}

func checkImage(ctx context.Context, e *ec2.Client, f *computeenv.ForgeOptions) error {
	if f.ImageID == "" {
		return nil
	}
	out, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{f.ImageID}})
	if strings.HasPrefix(forge.Code(err), "InvalidAMIID") {
		return apierr.Unprocessable("image_not_found", "batch.forge.imageId", "AMI %s does not exist in this region (or is not shared with this account)", f.ImageID)
	}
	if err != nil {
		return fmt.Errorf("describe image %s: %w", f.ImageID, err)
	}
	if len(out.Images) == 0 {
		return apierr.Unprocessable("image_not_found", "batch.forge.imageId", "AMI %s does not exist in this region (or is not shared with this account)", f.ImageID)
	}
	want := etypes.ArchitectureValuesX8664
	if f.Arm64Enabled {
		want = etypes.ArchitectureValuesArm64
	}
	if got := out.Images[0].Architecture; got != want {
		return apierr.Unprocessable("image_architecture", "batch.forge.imageId", "AMI %s is %s; the compute instances are %s (batch.forge.arm64Enabled is %t)", f.ImageID, got, want, f.Arm64Enabled)
	}
	return nil
}

func checkKeyPair(ctx context.Context, e *ec2.Client, name string) error {
	if name == "" {
		return nil
	}
	out, err := e.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{name}})
	if forge.Code(err) == "InvalidKeyPair.NotFound" || err == nil && len(out.KeyPairs) == 0 {
		return apierr.Unprocessable("key_pair_not_found", "batch.forge.ec2KeyPair", "key pair %q does not exist in this region", name)
	}
	if err != nil {
		return fmt.Errorf("describe key pair %s: %w", name, err)
	}
	return nil
}

// checkEFS requires the file system to exist and to have an available
// mount target, in the CE's VPC, in every availability zone of the CE's
// subnets: hosts mount through the mount target of their own zone.
func checkEFS(ctx context.Context, fs awsclient.FileSystemReader, e *ec2.Client, f *computeenv.ForgeOptions) error {
	got, err := fs.EFS(ctx, f.EfsID)
	if err != nil {
		return err
	}
	if got == nil {
		return apierr.Unprocessable("efs_not_found", "batch.forge.efsId", "EFS file system %s does not exist in this region", f.EfsID)
	}
	if got.State != "available" {
		return apierr.Unprocessable("efs_not_available", "batch.forge.efsId", "EFS file system %s is %s, not available", f.EfsID, got.State)
	}
	ids := slices.Clone(f.Subnets)
	for _, mt := range got.MountTargets {
		ids = append(ids, mt.SubnetID)
	}
	slices.Sort(ids)
	sn, err := e.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: slices.Compact(ids)})
	if err != nil {
		return fmt.Errorf("describe subnets of the compute environment and of EFS %s: %w", f.EfsID, err)
	}
	type place struct{ az, vpc string }
	where := map[string]place{}
	for _, s := range sn.Subnets {
		where[aws.ToString(s.SubnetId)] = place{aws.ToString(s.AvailabilityZone), aws.ToString(s.VpcId)}
	}
	covered := map[string]bool{}
	for _, mt := range got.MountTargets {
		pl := where[mt.SubnetID]
		if mt.AvailabilityZone != "" {
			pl.az = mt.AvailabilityZone
		}
		if mt.VpcID != "" {
			pl.vpc = mt.VpcID
		}
		if pl.vpc == f.VpcID && (mt.State == "" || mt.State == "available" || mt.State == "creating") {
			covered[pl.az] = true
		}
	}
	var missing []string
	for _, s := range f.Subnets {
		if az := where[s].az; !covered[az] && !slices.Contains(missing, az) {
			missing = append(missing, az)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return apierr.Unprocessable("efs_unreachable", "batch.forge.efsId",
			"EFS file system %s has no mount target in VPC %s for availability zone(s) %s of the compute environment's subnets: add mount targets there (or choose subnets where it has them)",
			f.EfsID, f.VpcID, strings.Join(missing, ", "))
	}
	return nil
}

// checkFSx requires the DNS name to be an FSx for Lustre file system of
// the CE's VPC that is not failing or being deleted.
func checkFSx(ctx context.Context, fs awsclient.FileSystemReader, f *computeenv.ForgeOptions) error {
	got, err := fs.FSxByDNSName(ctx, f.FsxName)
	if err != nil {
		return err
	}
	switch {
	case got == nil:
		return apierr.Unprocessable("fsx_not_found", "batch.forge.fsxName", "no FSx file system in this region has the DNS name %s", f.FsxName)
	case got.Type != "" && got.Type != "LUSTRE":
		return apierr.Unprocessable("fsx_not_lustre", "batch.forge.fsxName", "FSx file system %s is %s; ceforge mounts FSx for Lustre", got.ID, got.Type)
	case got.VpcID != "" && got.VpcID != f.VpcID:
		return apierr.Unprocessable("fsx_unreachable", "batch.forge.fsxName", "FSx file system %s is in VPC %s, not in the compute environment's VPC %s", got.ID, got.VpcID, f.VpcID)
	case slices.Contains([]string{"DELETING", "FAILED", "MISCONFIGURED"}, got.Lifecycle):
		return apierr.Unprocessable("fsx_not_available", "batch.forge.fsxName", "FSx file system %s is %s", got.ID, got.Lifecycle)
	}
	return nil
}

// checkQuotas refuses, with a 409, a CE whose forged compute environments
// or queues would pass AWS Batch's per-region quotas: forging would fail
// half-way (after the roles, launch template and compute environments).
func checkQuotas(ctx context.Context, client *batch.Client, region string, d forge.Design) error {
	queues, err := countQueues(ctx, client)
	if err != nil {
		return err
	}
	if need := len(d.Queues); queues+need > JobQueueQuota {
		return apierr.Conflict("job_queue_quota", "batch.forge",
			"the account has %d of the %d job queues AWS Batch allows in %s and this compute environment needs %d more: delete unused job queues (or compute environments) first",
			queues, JobQueueQuota, region, need)
	}
	ces, err := countComputeEnvs(ctx, client)
	if err != nil {
		return err
	}
	if need := len(d.ComputeEnvs); ces+need > ComputeEnvQuota {
		return apierr.Conflict("compute_environment_quota", "batch.forge",
			"the account has %d of the %d AWS Batch compute environments allowed in %s and this compute environment needs %d more: delete unused ones first",
			ces, ComputeEnvQuota, region, need)
	}
	return nil
}

func countQueues(ctx context.Context, client *batch.Client) (int, error) {
	n := 0
	in := &batch.DescribeJobQueuesInput{MaxResults: aws.Int32(100)}
	for {
		out, err := client.DescribeJobQueues(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("count job queues: %w", err)
		}
		n += len(out.JobQueues)
		if aws.ToString(out.NextToken) == "" {
			return n, nil
		}
		in.NextToken = out.NextToken
	}
}

func countComputeEnvs(ctx context.Context, client *batch.Client) (int, error) {
	n := 0
	in := &batch.DescribeComputeEnvironmentsInput{MaxResults: aws.Int32(100)}
	for {
		out, err := client.DescribeComputeEnvironments(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("count compute environments: %w", err)
		}
		n += len(out.ComputeEnvironments)
		if aws.ToString(out.NextToken) == "" {
			return n, nil
		}
		in.NextToken = out.NextToken
	}
}
