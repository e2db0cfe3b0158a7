package forge

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/ceforge/ceforge/internal/computeenv"
)

// settleRounds bounds how often one Delete call re-describes Batch
// resources it just changed: AWS takes minutes (the reconciler comes back),
// the emulator none (one pass suffices).
const settleRounds = 3

// Delete takes the next teardown steps and reports whether everything the
// design creates is gone. It works from the deterministic names, not only
// from the records, so resources created by an attempt that crashed before
// recording them are removed too; NotFound counts as done.
func (f *Forger) Delete(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error) {
	for _, s := range []step{f.deleteQueues, f.deleteComputeEnvs, f.deleteJobDefinition, f.deleteLaunchTemplate, f.deleteFSx, f.deleteEFS, f.deleteLogGroup, f.deleteRoles} {
		ok, err := s(ctx, ce, d)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func mark(ce *computeenv.ComputeEnv, typ, name, state string) {
	if r := Find(ce, typ, name); r != nil {
		r.State = state
	}
}

// deleteQueues: disable, then delete once disabled; gone when Describe no
// longer lists them.
func (f *Forger) deleteQueues(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error) {
	names := make([]string, len(d.Queues))
	for i, q := range d.Queues {
		names[i] = q.Name
	}
	for round := 0; round < settleRounds; round++ {
		got, err := f.Batch.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: names})
		if err != nil {
			return false, wrap("describe job queues", err)
		}
		left := 0
		for _, q := range got.JobQueues {
			name := aws.ToString(q.JobQueueName)
			switch {
			case q.Status == btypes.JQStatusDeleted:
				continue
			case q.Status == btypes.JQStatusCreating || q.Status == btypes.JQStatusUpdating || q.Status == btypes.JQStatusDeleting:
			case q.State == btypes.JQStateEnabled:
				if _, err := f.Batch.UpdateJobQueue(ctx, &batch.UpdateJobQueueInput{JobQueue: q.JobQueueArn, State: btypes.JQStateDisabled}); err != nil {
					return false, wrap("disable job queue "+name, err)
				}
			default:
				if _, err := f.Batch.DeleteJobQueue(ctx, &batch.DeleteJobQueueInput{JobQueue: q.JobQueueArn}); err != nil {
					return false, wrap("delete job queue "+name, err)
				}
			}
			mark(ce, TypeJobQueue, name, StateDeleting)
			left++
		}
		if left == 0 {
			for _, n := range names {
				mark(ce, TypeJobQueue, n, StateDeleted)
			}
			return true, nil
		}
	}
	return false, nil
}

func (f *Forger) deleteComputeEnvs(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error) {
	names := make([]string, len(d.ComputeEnvs))
	for i, c := range d.ComputeEnvs {
		names[i] = c.Name
	}
	for round := 0; round < settleRounds; round++ {
		got, err := f.Batch.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{ComputeEnvironments: names})
		if err != nil {
			return false, wrap("describe compute environments", err)
		}
		left := 0
		for _, c := range got.ComputeEnvironments {
			name := aws.ToString(c.ComputeEnvironmentName)
			switch {
			case c.Status == btypes.CEStatusDeleted:
				continue
			case c.Status == btypes.CEStatusCreating || c.Status == btypes.CEStatusUpdating || c.Status == btypes.CEStatusDeleting:
			case c.State == btypes.CEStateEnabled:
				if _, err := f.Batch.UpdateComputeEnvironment(ctx, &batch.UpdateComputeEnvironmentInput{ComputeEnvironment: c.ComputeEnvironmentArn, State: btypes.CEStateDisabled}); err != nil {
					return false, wrap("disable compute environment "+name, err)
				}
			default:
				if _, err := f.Batch.DeleteComputeEnvironment(ctx, &batch.DeleteComputeEnvironmentInput{ComputeEnvironment: c.ComputeEnvironmentArn}); err != nil {
					return false, wrap("delete compute environment "+name, err)
				}
			}
			mark(ce, TypeComputeEnv, name, StateDeleting)
			left++
		}
		if left == 0 {
			for _, n := range names {
				mark(ce, TypeComputeEnv, n, StateDeleted)
			}
			return true, nil
		}
	}
	return false, nil
}

func (f *Forger) deleteJobDefinition(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error) {
	if r := Find(ce, TypeJobDefinition, d.Names.JobDefinition); r != nil && r.State == StateDeleted {
		return true, nil
	}
	if err := DeregisterJobDefinitions(ctx, f.Batch, d.Names.JobDefinition, ce.ID); err != nil {
		return false, err
	}
	mark(ce, TypeJobDefinition, d.Names.JobDefinition, StateDeleted)
	return true, nil
}

func (f *Forger) deleteLaunchTemplate(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error) {
	name := d.Names.LaunchTemplate
	r := Find(ce, TypeLaunchTemplate, name)
	if r != nil && r.State == StateDeleted {
		return true, nil
	}
	id := ""
	if r != nil {
		id = r.ID
	}
	if id == "" {
		// Never recorded (crash, or not reached): look it up by its name.
		got, err := f.EC2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{name}})
		if err != nil && Code(err) != "InvalidLaunchTemplateName.NotFoundException" {
			return false, wrap("describe launch template "+name, err)
		}
		if err == nil && len(got.LaunchTemplates) > 0 {
			id = aws.ToString(got.LaunchTemplates[0].LaunchTemplateId)
		}
	}
	if id != "" {
		_, err := f.EC2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(id)})
		if err != nil && Code(err) != "InvalidLaunchTemplateId.NotFound" && Code(err) != "InvalidLaunchTemplateName.NotFoundException" {
			return false, wrap("delete launch template "+name, err)
		}
	}
	mark(ce, TypeLaunchTemplate, name, StateDeleted)
	return true, nil
}

func (f *Forger) deleteFSx(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error) {
	if !d.FSxCreate {
		return true, nil
	}
	fs, err := f.findFSx(ctx, ce, d.Names.Base)
	if err != nil {
		return false, err
	}
	if fs == nil {
		mark(ce, TypeFSx, d.Names.Base, StateDeleted)
		return true, nil
	}
	if fs.Lifecycle != "DELETING" {
		if _, err := f.FSx.DeleteFileSystem(ctx, &fsx.DeleteFileSystemInput{FileSystemId: fs.FileSystemId}); err != nil && Code(err) != "FileSystemNotFound" {
			return false, wrap("delete FSx "+aws.ToString(fs.FileSystemId), err)
		}
	}
	mark(ce, TypeFSx, d.Names.Base, StateDeleting)
	fs, err = f.findFSx(ctx, ce, d.Names.Base)
	if err != nil || fs != nil {
		return false, err
	}
	mark(ce, TypeFSx, d.Names.Base, StateDeleted)
	return true, nil
}

func (f *Forger) deleteEFS(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error) {
	if !d.EFSCreate {
		return true, nil
	}
	got, err := f.EFS.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{CreationToken: aws.String(d.Names.Base)})
	if err != nil {
		return false, wrap("describe EFS", err)
	}
	for _, fs := range got.FileSystems {
		mts, err := f.EFS.DescribeMountTargets(ctx, &efs.DescribeMountTargetsInput{FileSystemId: fs.FileSystemId})
		if err != nil {
			return false, wrap("describe EFS mount targets", err)
		}
		for _, mt := range mts.MountTargets {
			if _, err := f.EFS.DeleteMountTarget(ctx, &efs.DeleteMountTargetInput{MountTargetId: mt.MountTargetId}); err != nil && Code(err) != "MountTargetNotFound" {
				return false, wrap("delete EFS mount target", err)
			}
		}
		_, err = f.EFS.DeleteFileSystem(ctx, &efs.DeleteFileSystemInput{FileSystemId: fs.FileSystemId})
		switch Code(err) {
		case "":
		case "FileSystemNotFound":
		case "FileSystemInUse": // mount targets take a while to go
			mark(ce, TypeEFS, d.Names.Base, StateDeleting)
			return false, nil
		default:
			return false, wrap("delete EFS", err)
		}
	}
	mark(ce, TypeEFS, d.Names.Base, StateDeleted)
	return true, nil
}

func (f *Forger) deleteLogGroup(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error) {
	if !d.CreateLogGroup {
		return true, nil
	}
	_, err := f.Logs.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String(d.LogGroup)})
	if err != nil && Code(err) != "ResourceNotFoundException" {
		return false, wrap("delete log group "+d.LogGroup, err)
	}
	mark(ce, TypeLogGroup, d.LogGroup, StateDeleted)
	return true, nil
}

func (f *Forger) deleteRoles(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error) {
	for _, r := range d.Roles {
		if cur := Find(ce, TypeRole, r.Name); cur != nil && cur.State == StateDeleted {
			continue
		}
		name := aws.String(r.Name)
		if r.Profile {
			if _, err := f.IAM.RemoveRoleFromInstanceProfile(ctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: name, RoleName: name}); err != nil && Code(err) != "NoSuchEntity" {
				return false, wrap("remove role from instance profile "+r.Name, err)
			}
			if _, err := f.IAM.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: name}); err != nil && Code(err) != "NoSuchEntity" {
				return false, wrap("delete instance profile "+r.Name, err)
			}
			mark(ce, TypeInstanceProfile, r.Name, StateDeleted)
		}
		attached, err := f.IAM.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: name})
		if Code(err) == "NoSuchEntity" {
			mark(ce, TypeRole, r.Name, StateDeleted)
			continue
		}
		if err != nil {
			return false, wrap("list policies of role "+r.Name, err)
		}
		for _, p := range attached.AttachedPolicies {
			if _, err := f.IAM.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: name, PolicyArn: p.PolicyArn}); err != nil && Code(err) != "NoSuchEntity" {
				return false, wrap("detach policy from role "+r.Name, err)
			}
		}
		if r.Inline != nil {
			if _, err := f.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: name, PolicyName: aws.String("ceforge")}); err != nil && Code(err) != "NoSuchEntity" {
				return false, wrap("delete policy of role "+r.Name, err)
			}
		}
		if _, err := f.IAM.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: name}); err != nil && Code(err) != "NoSuchEntity" {
			return false, wrap("delete role "+r.Name, err)
		}
		mark(ce, TypeRole, r.Name, StateDeleted)
	}
	return true, nil
}
