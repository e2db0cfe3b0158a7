package steps

import (
	"context"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
)

// settleRounds bounds how often one Delete call re-describes Batch
// resources it just changed: AWS takes minutes (the reconciler comes back),
// the emulator none (one pass suffices).
const settleRounds = 3

// Delete takes the next teardown steps and reports whether everything the
// design creates is gone. It works from the deterministic names, not only
// from the records, so resources created by an attempt that crashed before
// recording them are removed too; NotFound counts as done.
func (f *Forger) Delete(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	for _, s := range []step{f.deleteQueues, f.deleteComputeEnvs, f.deleteJobDefinition, f.deleteLaunchTemplate, f.deleteFSx, f.deleteEFS, f.deleteLogGroup, f.deleteRoles} {
		ok, err := s(ctx, ce, d)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func mark(ce *computeenv.ComputeEnv, typ, name, state string) {
	if r := forge.Find(ce, typ, name); r != nil {
		r.State = state
	}
}

// deleteQueues: disable, then delete once disabled; gone when Describe no
// longer lists them.
func (f *Forger) deleteQueues(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	names := make([]string, len(d.Queues))
	for i, q := range d.Queues {
		names[i] = q.Name
	}
	for round := 0; round < settleRounds; round++ {
		got, err := f.Batch.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: names})
		if err != nil {
			return false, forge.Wrap("describe job queues", err)
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
					return false, forge.Wrap("disable job queue "+name, err)
				}
			default:
				if _, err := f.Batch.DeleteJobQueue(ctx, &batch.DeleteJobQueueInput{JobQueue: q.JobQueueArn}); err != nil {
					return false, forge.Wrap("delete job queue "+name, err)
				}
			}
			mark(ce, forge.TypeJobQueue, name, forge.StateDeleting)
			left++
		}
		if left == 0 {
			for _, n := range names {
				mark(ce, forge.TypeJobQueue, n, forge.StateDeleted)
			}
			return true, nil
		}
	}
	return false, nil
}

func (f *Forger) deleteComputeEnvs(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	names := make([]string, len(d.ComputeEnvs))
	for i, c := range d.ComputeEnvs {
		names[i] = c.Name
	}
	for round := 0; round < settleRounds; round++ {
		got, err := f.Batch.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{ComputeEnvironments: names})
		if err != nil {
			return false, forge.Wrap("describe compute environments", err)
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
					return false, forge.Wrap("disable compute environment "+name, err)
				}
			default:
				if _, err := f.Batch.DeleteComputeEnvironment(ctx, &batch.DeleteComputeEnvironmentInput{ComputeEnvironment: c.ComputeEnvironmentArn}); err != nil {
					return false, forge.Wrap("delete compute environment "+name, err)
				}
			}
			mark(ce, forge.TypeComputeEnv, name, forge.StateDeleting)
			left++
		}
		if left == 0 {
			for _, n := range names {
				mark(ce, forge.TypeComputeEnv, n, forge.StateDeleted)
			}
			return true, nil
		}
	}
	return false, nil
}

func (f *Forger) deleteJobDefinition(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	if r := forge.Find(ce, forge.TypeJobDefinition, d.Names.JobDefinition); r != nil && r.State == forge.StateDeleted {
		return true, nil
	}
	// The studios' revisions (registered at launch, never recorded) go too.
	for _, name := range []string{d.Names.StudioJobDefinition, d.Names.JobDefinition} {
		if err := forge.DeregisterJobDefinitions(ctx, f.Batch, name, ce.ID); err != nil {
			return false, err
		}
	}
	mark(ce, forge.TypeJobDefinition, d.Names.JobDefinition, forge.StateDeleted)
	return true, nil
}

func (f *Forger) deleteLaunchTemplate(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	name := d.Names.LaunchTemplate
	r := forge.Find(ce, forge.TypeLaunchTemplate, name)
	if r != nil && r.State == forge.StateDeleted {
		return true, nil
	}
	id := ""
	if r != nil {
		id = r.ID
	}
	if id == "" {
		// Never recorded (crash, or not reached): look it up by its name.
		got, err := f.EC2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{name}})
		if err != nil && forge.Code(err) != "InvalidLaunchTemplateName.NotFoundException" {
			return false, forge.Wrap("describe launch template "+name, err)
		}
		if err == nil && len(got.LaunchTemplates) > 0 {
			id = aws.ToString(got.LaunchTemplates[0].LaunchTemplateId)
		}
	}
	if id != "" {
		_, err := f.EC2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(id)})
		if err != nil && forge.Code(err) != "InvalidLaunchTemplateId.NotFound" && forge.Code(err) != "InvalidLaunchTemplateName.NotFoundException" {
			return false, forge.Wrap("delete launch template "+name, err)
		}
	}
	mark(ce, forge.TypeLaunchTemplate, name, forge.StateDeleted)
	return true, nil
}

func (f *Forger) deleteFSx(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	if !d.FSxCreate {
		return true, nil
	}
	fs, err := f.findFSx(ctx, ce, d.Names.Base)
	if err != nil {
		return false, err
	}
	if fs == nil {
		mark(ce, forge.TypeFSx, d.Names.Base, forge.StateDeleted)
		return true, nil
	}
	if fs.Lifecycle != "DELETING" {
		if _, err := f.FSx.DeleteFileSystem(ctx, &fsx.DeleteFileSystemInput{FileSystemId: fs.FileSystemId}); err != nil && forge.Code(err) != "FileSystemNotFound" {
			return false, forge.Wrap("delete FSx "+aws.ToString(fs.FileSystemId), err)
		}
	}
	mark(ce, forge.TypeFSx, d.Names.Base, forge.StateDeleting)
	fs, err = f.findFSx(ctx, ce, d.Names.Base)
	if err != nil || fs != nil {
		return false, err
	}
	mark(ce, forge.TypeFSx, d.Names.Base, forge.StateDeleted)
	return true, nil
}

func (f *Forger) deleteEFS(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	if !d.EFSCreate {
		return true, nil
	}
	got, err := f.EFS.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{CreationToken: aws.String(d.Names.Base)})
	if err != nil {
		return false, forge.Wrap("describe EFS", err)
	}
	for _, fs := range got.FileSystems {
		mts, err := f.EFS.DescribeMountTargets(ctx, &efs.DescribeMountTargetsInput{FileSystemId: fs.FileSystemId})
		if err != nil {
			return false, forge.Wrap("describe EFS mount targets", err)
		}
		for _, mt := range mts.MountTargets {
			if _, err := f.EFS.DeleteMountTarget(ctx, &efs.DeleteMountTargetInput{MountTargetId: mt.MountTargetId}); err != nil && forge.Code(err) != "MountTargetNotFound" {
				return false, forge.Wrap("delete EFS mount target", err)
			}
		}
		_, err = f.EFS.DeleteFileSystem(ctx, &efs.DeleteFileSystemInput{FileSystemId: fs.FileSystemId})
		switch forge.Code(err) {
		case "":
		case "FileSystemNotFound":
		case "FileSystemInUse": // mount targets take a while to go
			mark(ce, forge.TypeEFS, d.Names.Base, forge.StateDeleting)
			return false, nil
		default:
			return false, forge.Wrap("delete EFS", err)
		}
	}
	mark(ce, forge.TypeEFS, d.Names.Base, forge.StateDeleted)
	return true, nil
}

func (f *Forger) deleteLogGroup(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	if !d.CreateLogGroup {
		return true, nil
	}
	_, err := f.Logs.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String(d.LogGroup)})
	if err != nil && forge.Code(err) != "ResourceNotFoundException" {
		return false, forge.Wrap("delete log group "+d.LogGroup, err)
	}
	mark(ce, forge.TypeLogGroup, d.LogGroup, forge.StateDeleted)
	return true, nil
}

func (f *Forger) deleteRoles(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	roles := d.Roles
	if r := forge.Find(ce, forge.TypeRole, d.Names.ServiceRole); r != nil {
		// A legacy CE's forged Batch service role (AWSBatchServiceRole attached).
		roles = append(slices.Clone(roles), forge.Role{Name: d.Names.ServiceRole})
	}
	for _, r := range roles {
		if cur := forge.Find(ce, forge.TypeRole, r.Name); cur != nil && cur.State == forge.StateDeleted {
			continue
		}
		name := aws.String(r.Name)
		if r.Profile {
			if _, err := f.IAM.RemoveRoleFromInstanceProfile(ctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: name, RoleName: name}); err != nil && forge.Code(err) != "NoSuchEntity" {
				return false, forge.Wrap("remove role from instance profile "+r.Name, err)
			}
			if _, err := f.IAM.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: name}); err != nil && forge.Code(err) != "NoSuchEntity" {
				return false, forge.Wrap("delete instance profile "+r.Name, err)
			}
			mark(ce, forge.TypeInstanceProfile, r.Name, forge.StateDeleted)
		}
		attached, err := f.IAM.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: name})
		if forge.Code(err) == "NoSuchEntity" {
			mark(ce, forge.TypeRole, r.Name, forge.StateDeleted)
			continue
		}
		if err != nil {
			return false, forge.Wrap("list policies of role "+r.Name, err)
		}
		for _, p := range attached.AttachedPolicies {
			if _, err := f.IAM.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: name, PolicyArn: p.PolicyArn}); err != nil && forge.Code(err) != "NoSuchEntity" {
				return false, forge.Wrap("detach policy from role "+r.Name, err)
			}
		}
		if r.Inline != nil {
			if _, err := f.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: name, PolicyName: aws.String("ceforge")}); err != nil && forge.Code(err) != "NoSuchEntity" {
				return false, forge.Wrap("delete policy of role "+r.Name, err)
			}
		}
		if _, err := f.IAM.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: name}); err != nil && forge.Code(err) != "NoSuchEntity" {
			return false, forge.Wrap("delete role "+r.Name, err)
		}
		mark(ce, forge.TypeRole, r.Name, forge.StateDeleted)
	}
	return true, nil
}
