package stack

import (
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/ceforge/ceforge/internal/forge/hostinit"
	"github.com/ceforge/ceforge/internal/forgedrole"
)

// The permission groups of the reference documents (create / validate /
// launch / delete / logs), rewritten for ceforge: every resource that AWS
// lets a policy name is scoped to the resource prefix, to the ceforge
// ownership tag, or to the run-artifact path. Each group is one customer
// managed policy (up to 6,144 characters each, so the api role, which holds
// most groups, stays clear of the 10,240-character inline limit) attached
// to the roles of the functions that need it (FunctionGroups):
//
//	api         validate, launch, secrets, logs, assume; table rw; invoke sweeper
//	reconciler  validate, create, delete, observe, stop, assume; table rw
//	batchevents events, assume; table rw
//	ec2events   events, assume; table rw
//	logs        logs, assume; table read
//	sweeper     sweep, assume; table rw
//	trace       none; progress and task items only (Data.grantTrace)
//
// create is two policies (CreateIdentity: IAM; Create: Batch, EC2, logs,
// file systems) to stay within the managed-policy size when many allowed
// regions are listed.

// ManagedTagKey and ManagedTagValue mark everything ceforge creates.
const (
	ManagedTagKey   = "ceforge:managed"
	ManagedTagValue = "true"
)

// PassRoleServices are the only services a forged role may be passed to.
var PassRoleServices = []string{"ec2.amazonaws.com", "batch.amazonaws.com", "ecs-tasks.amazonaws.com"}

// ServiceLinkedRoles the forge may create on first use in an account.
var serviceLinkedRoles = []string{
	"batch.amazonaws.com", "ecs.amazonaws.com", "spot.amazonaws.com", "spotfleet.amazonaws.com",
	"elasticfilesystem.amazonaws.com", "fsx.amazonaws.com", "s3.data-source.lustre.fsx.amazonaws.com",
}

// perm is one policy statement before it becomes CDK.
type perm struct {
	sid string
	// why justifies every wildcard in resources; it becomes the reason of
	// the statement's cdk-nag IAM5 suppression (required when a resource
	// holds a wildcard).
	why       string
	actions   []string
	resources []string
	cond      map[string]map[string]any
	// regional statements get an aws:RequestedRegion condition when the
	// deployment restricts regions.
	regional bool
	// deny makes it a Deny statement (guard rails no Allow can override).
	deny bool
	// notActions, with deny, denies every action but these.
	notActions []string
}

type permissions struct {
	cfg       Config
	partition string
	account   string
	// boundary is the ARN of the permissions boundary policy (a token).
	boundary string
}

func newPermissions(cfg Config) permissions {
	return permissions{cfg: cfg, partition: *awscdk.Aws_PARTITION(), account: *awscdk.Aws_ACCOUNT_ID()}
}

func (p permissions) arn(service, region, account, resource string) string {
	return "arn:" + p.partition + ":" + service + ":" + region + ":" + account + ":" + resource
}

// ARNs used by several groups.
func (p permissions) prefixedRoles() string {
	return p.arn("iam", "", p.account, "role/"+p.cfg.Prefix+"*")
}
func (p permissions) prefixedProfiles() string {
	return p.arn("iam", "", p.account, "instance-profile/"+p.cfg.Prefix+"*")
}
func (p permissions) batch(kind string) string {
	return p.arn("batch", "*", p.account, kind+"/"+p.cfg.Prefix+"*")
}
func (p permissions) ec2(kind string) string { return p.arn("ec2", "*", p.account, kind+"/*") }

// runArtifacts is where a run's files live under its work directory
// (<workDir>/.ceforge/runs/<run-id>/...: exit status, nextflow.log), in
// the allowed buckets: at the bucket's root or under a key prefix.
func (p permissions) runArtifacts() []string {
	var out []string
	for _, b := range p.bucketARNs() {
		out = append(out, b+"/.ceforge/runs/*", b+"/*/.ceforge/runs/*")
	}
	return out
}

// logGroups are the log groups ceforge creates and deletes: a forged
// compute environment's /aws/batch/job/<prefix><ce-id> (internal/forge),
// anything under /ceforge/, and the run log group when configured elsewhere.
func (p permissions) logGroups() []string {
	out := []string{
		p.arn("logs", "*", p.account, "log-group:/aws/batch/job/"+p.cfg.Prefix+"*"),
		p.arn("logs", "*", p.account, "log-group:/ceforge/*"),
	}
	if !strings.HasPrefix(p.cfg.RunLogGroup, "/ceforge/") {
		out = append(out, p.arn("logs", "*", p.account, "log-group:"+p.cfg.RunLogGroup+"*"))
	}
	return out
}

func tagIs(op string) map[string]map[string]any {
	return map[string]map[string]any{"StringEquals": {op + "/" + ManagedTagKey: ManagedTagValue}}
}

var (
	requestTagged  = tagIs("aws:RequestTag")
	resourceTagged = tagIs("aws:ResourceTag")
	// viaService: only an AWS service acting with the caller's
	// credentials (a forward access session), never the caller directly.
	viaService = map[string]map[string]any{"Bool": {"aws:ViaAWSService": "true"}}
)

func createAction(action string) map[string]map[string]any {
	return map[string]map[string]any{"StringEquals": {"ec2:CreateAction": action}}
}

func (p permissions) passRole() perm {
	return perm{
		sid:       "PassForgedRolesToComputeServices",
		why:       "Roles named with the ceforge prefix only, and only to EC2, Batch and ECS tasks (iam:PassedToService).",
		actions:   []string{"iam:PassRole"},
		resources: []string{p.prefixedRoles()},
		cond:      map[string]map[string]any{"StringEquals": {"iam:PassedToService": PassRoleServices}},
	}
}

// validate: read-only checks of a compute environment's inputs.
func (p permissions) validate() []perm {
	return []perm{
		{
			sid: "DescribeComputeInputs",
			why: "EC2, Batch, EFS and FSx Describe* calls do not support resource-level permissions; read-only.",
			actions: []string{
				"ec2:DescribeImages", "ec2:DescribeInstanceTypes", "ec2:DescribeKeyPairs",
				"ec2:DescribeLaunchTemplates", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
				"batch:DescribeComputeEnvironments", "batch:DescribeJobDefinitions", "batch:DescribeJobQueues",
				"elasticfilesystem:DescribeFileSystems", "elasticfilesystem:DescribeMountTargets",
				"fsx:DescribeFileSystems",
			},
			resources: []string{"*"},
			regional:  true,
		},
		{
			sid:       "ReadPublicAmiParameters",
			why:       "AWS public parameters under /aws/service/ (ECS-optimized and AL2023 AMI ids) in any compute environment region; read-only.",
			actions:   []string{"ssm:GetParameter", "ssm:GetParameters"},
			resources: []string{p.arn("ssm", "*", "*", "parameter/aws/service/*")},
			regional:  true,
		},
		{
			sid:       "ReadSuppliedRoles",
			why:       "Validates roles and instance profiles the user names in a compute environment (any name, own account); read-only.",
			actions:   []string{"iam:GetRole", "iam:GetInstanceProfile"},
			resources: []string{p.arn("iam", "", p.account, "role/*"), p.arn("iam", "", p.account, "instance-profile/*")},
		},
		{
			sid:       "CheckWorkDirBuckets",
			why:       "Work directories are in the deployment's allowed buckets (allowedBuckets); bucket-level reads only (location, listing) to validate them.",
			actions:   []string{"s3:GetBucketLocation", "s3:ListBucket"},
			resources: p.bucketARNs(),
		},
	}
}

// attachablePolicies are the ARNs of the AWS managed policies ceforge
// attaches to forged roles (forgedrole.AttachablePolicies).
func (p permissions) attachablePolicies() []string {
	out := make([]string, 0, len(forgedrole.AttachablePolicies))
	for _, path := range forgedrole.AttachablePolicies {
		out = append(out, "arn:"+p.partition+":iam::aws:policy/"+path)
	}
	return out
}

// batchServiceLinkedRole is the role forged Batch compute environments
// name as their service role.
func (p permissions) batchServiceLinkedRole() string {
	return p.arn("iam", "", p.account, "role/aws-service-role/"+forgedrole.PrincipalBatch+"/"+forgedrole.BatchServiceLinkedRole)
}

// underBoundary conditions a statement on the permissions boundary of the
// role it creates or changes.
func (p permissions) underBoundary() map[string]map[string]any {
	return map[string]map[string]any{"StringEquals": {"iam:PermissionsBoundary": p.boundary}}
}

// createIdentity: the IAM side of forging a compute environment (roles,
// instance profiles, service-linked roles, passing forged roles). Every
// role the reconciler creates or changes carries the permissions boundary
// (iam:PermissionsBoundary), which caps whatever it is given: a role it
// forges can never do more than the boundary, whatever the reconciler
// writes into it. It may attach only the AWS managed policies ceforge
// uses, never remove a boundary, and never change the boundary policy.
func (p permissions) createIdentity() []perm {
	attach := p.underBoundary()
	attach["ArnEquals"] = map[string]any{"iam:PolicyARN": p.attachablePolicies()}
	return []perm{
		{
			sid:       "ForgeRolesUnderBoundary",
			why:       "Roles named with the ceforge prefix only, created and changed only under the permissions boundary (iam:PermissionsBoundary).",
			actions:   []string{"iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"},
			resources: []string{p.prefixedRoles()},
			cond:      p.underBoundary(),
		},
		{
			sid:       "AttachCeforgePoliciesUnderBoundary",
			why:       "Roles named with the ceforge prefix under the permissions boundary, and only the AWS managed policies ceforge attaches (iam:PolicyARN, exact ARNs).",
			actions:   []string{"iam:AttachRolePolicy"},
			resources: []string{p.prefixedRoles()},
			cond:      attach,
		},
		{
			sid:       "TagAndReadForgedRoles",
			why:       "Roles named with the ceforge prefix only: tags at creation, reads to adopt a role a crashed attempt created.",
			actions:   []string{"iam:TagRole", "iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"},
			resources: []string{p.prefixedRoles()},
		},
		{
			sid:     "NeverLiftTheBoundary",
			deny:    true,
			actions: []string{"iam:DeleteRolePermissionsBoundary"},
			// Every role: no function ever removes a boundary.
			resources: []string{p.arn("iam", "", p.account, "role/*")},
		},
		{
			sid:       "NeverChangeTheBoundaryPolicy",
			deny:      true,
			actions:   []string{"iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion"},
			resources: []string{p.boundary},
		},
		{
			sid:       "ForgeInstanceProfiles",
			why:       "Instance profiles named with the ceforge prefix only.",
			actions:   []string{"iam:CreateInstanceProfile", "iam:TagInstanceProfile", "iam:GetInstanceProfile", "iam:AddRoleToInstanceProfile"},
			resources: []string{p.prefixedProfiles()},
		},
		{
			// Batch may check PassRole on the service role it is given.
			sid:       "PassBatchServiceLinkedRole",
			actions:   []string{"iam:PassRole"},
			resources: []string{p.batchServiceLinkedRole()},
			cond:      map[string]map[string]any{"StringEquals": {"iam:PassedToService": forgedrole.PrincipalBatch}},
		},
		{
			sid:       "CreateServiceLinkedRoles",
			why:       "Service-linked role paths are fixed by AWS; limited by iam:AWSServiceName to the services the forge uses.",
			actions:   []string{"iam:CreateServiceLinkedRole"},
			resources: []string{p.arn("iam", "", p.account, "role/aws-service-role/*")},
			cond:      map[string]map[string]any{"StringEquals": {"iam:AWSServiceName": serviceLinkedRoles}},
		},
		p.passRole(),
	}
}

// create: forge a compute environment's compute resources (Batch, launch
// templates, log groups, file systems).
func (p permissions) create() []perm {
	return []perm{
		{
			sid: "ForgeBatch",
			why: "Batch compute environments, job queues and job definitions named with the ceforge prefix, in any compute environment region.",
			actions: []string{
				"batch:CreateComputeEnvironment", "batch:UpdateComputeEnvironment", "batch:CreateJobQueue",
				"batch:UpdateJobQueue", "batch:RegisterJobDefinition", "batch:TagResource",
			},
			resources: []string{p.batch("compute-environment"), p.batch("job-queue"), p.batch("job-definition")},
			regional:  true,
		},
		{
			sid:       "CreateTaggedLaunchTemplates",
			why:       "Launch template ids are generated by EC2; creation requires the ceforge:managed=true request tag.",
			actions:   []string{"ec2:CreateLaunchTemplate"},
			resources: []string{p.ec2("launch-template")},
			cond:      requestTagged,
			regional:  true,
		},
		{
			sid:       "TagLaunchTemplatesOnCreate",
			why:       "Tagging only as part of CreateLaunchTemplate (ec2:CreateAction).",
			actions:   []string{"ec2:CreateTags"},
			resources: []string{p.ec2("launch-template")},
			cond:      createAction("CreateLaunchTemplate"),
			regional:  true,
		},
		{
			sid:       "ForgeLogGroups",
			why:       "Log groups of forged compute environments (/aws/batch/job/<prefix>*), under /ceforge/, and the configured run log group only.",
			actions:   []string{"logs:CreateLogGroup", "logs:TagResource", "logs:TagLogGroup"},
			resources: p.logGroups(),
			regional:  true,
		},
		{
			// The Service Authorization Reference lists no resource type
			// for elasticfilesystem:CreateFileSystem (the request's
			// resource is "*"), while the EFS guide's example names
			// file-system/*: "*" holds under both (IAM-checked tier).
			sid:       "CreateTaggedEFS",
			why:       "elasticfilesystem:CreateFileSystem takes no resource type (Service Authorization Reference); creation requires the ceforge:managed=true request tag.",
			actions:   []string{"elasticfilesystem:CreateFileSystem"},
			resources: []string{"*"},
			cond:      requestTagged,
			regional:  true,
		},
		{
			sid: "CreateTaggedFileSystems",
			why: "File system ids are generated; creation and tagging require the ceforge:managed=true request tag.",
			actions: []string{
				"elasticfilesystem:TagResource", "fsx:CreateFileSystem", "fsx:TagResource",
			},
			resources: []string{p.arn("elasticfilesystem", "*", p.account, "file-system/*"), p.arn("fsx", "*", p.account, "file-system/*")},
			cond:      requestTagged,
			regional:  true,
		},
		{
			sid:       "ManageOwnedFileSystems",
			why:       "Only file systems tagged ceforge:managed=true (aws:ResourceTag).",
			actions:   []string{"elasticfilesystem:CreateMountTarget"},
			resources: []string{p.arn("elasticfilesystem", "*", p.account, "file-system/*")},
			cond:      resourceTagged,
			regional:  true,
		},
		{
			// EFS mount targets are network interfaces EFS creates with the
			// caller's permissions (a forward access session).
			sid:       "MountTargetInterfaces",
			why:       "EFS mount targets create network interfaces in user-chosen subnets and security groups; ids are unknown in advance. Only EFS, on the reconciler's behalf (aws:ViaAWSService), never the reconciler itself.",
			actions:   []string{"ec2:CreateNetworkInterface"},
			resources: []string{p.ec2("network-interface"), p.ec2("subnet"), p.ec2("security-group")},
			cond:      viaService,
			regional:  true,
		},
		{
			sid:       "DescribeMountTargetInterfaces",
			why:       "ec2:DescribeNetworkInterfaces does not support resource-level permissions; read-only.",
			actions:   []string{"ec2:DescribeNetworkInterfaces"},
			resources: []string{"*"},
			regional:  true,
		},
	}
}

// delete: dispose of what create made.
func (p permissions) delete() []perm {
	return []perm{
		{
			sid: "DisposeRoles",
			why: "Roles named with the ceforge prefix only.",
			actions: []string{
				"iam:DeleteRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:GetRole",
				"iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:RemoveRoleFromInstanceProfile",
			},
			resources: []string{p.prefixedRoles()},
		},
		{
			sid:       "DisposeInstanceProfiles",
			why:       "Instance profiles named with the ceforge prefix only.",
			actions:   []string{"iam:DeleteInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:GetInstanceProfile"},
			resources: []string{p.prefixedProfiles()},
		},
		{
			sid: "DisposeBatch",
			why: "Batch resources named with the ceforge prefix only.",
			actions: []string{
				"batch:UpdateComputeEnvironment", "batch:DeleteComputeEnvironment", "batch:UpdateJobQueue",
				"batch:DeleteJobQueue", "batch:DeregisterJobDefinition",
			},
			resources: []string{p.batch("compute-environment"), p.batch("job-queue"), p.batch("job-definition")},
			regional:  true,
		},
		{
			sid:       "DeleteOwnedLaunchTemplates",
			why:       "Only launch templates tagged ceforge:managed=true (aws:ResourceTag).",
			actions:   []string{"ec2:DeleteLaunchTemplate"},
			resources: []string{p.ec2("launch-template")},
			cond:      resourceTagged,
			regional:  true,
		},
		{
			sid:       "DeleteLogGroups",
			why:       "Log groups of forged compute environments (/aws/batch/job/<prefix>*), under /ceforge/, and the configured run log group only.",
			actions:   []string{"logs:DeleteLogGroup"},
			resources: p.logGroups(),
			regional:  true,
		},
		{
			sid:       "DeleteOwnedFileSystems",
			why:       "Only file systems tagged ceforge:managed=true (aws:ResourceTag).",
			actions:   []string{"elasticfilesystem:DeleteFileSystem", "elasticfilesystem:DeleteMountTarget", "fsx:DeleteFileSystem"},
			resources: []string{p.arn("elasticfilesystem", "*", p.account, "file-system/*"), p.arn("fsx", "*", p.account, "file-system/*")},
			cond:      resourceTagged,
			regional:  true,
		},
		{
			// Deleting an EFS mount target deletes its network interface
			// with the caller's permissions (a forward access session): the
			// reconciler itself may delete no interface.
			sid:       "MountTargetInterfacesDelete",
			why:       "DeleteMountTarget deletes the mount target's interface with the caller's permissions; its id is unknown in advance. Only EFS, on the reconciler's behalf (aws:ViaAWSService), never the reconciler itself.",
			actions:   []string{"ec2:DeleteNetworkInterface"},
			resources: []string{p.ec2("network-interface")},
			cond:      viaService,
			regional:  true,
		},
	}
}

// observe: read the state of runs (instances and jobs).
func (p permissions) observe() []perm {
	return []perm{{
		sid:       "DescribeRunBackends",
		why:       "EC2 Describe* and batch:DescribeJobs/ListJobs do not support resource-level permissions; read-only.",
		actions:   []string{"ec2:DescribeInstances", "batch:DescribeJobs", "batch:ListJobs"},
		resources: []string{"*"},
		regional:  true,
	}}
}

// launch: start, tag, and stop runs.
func (p permissions) launch() []perm {
	return append(p.observe(), []perm{
		{
			// The instance and its volumes must carry the ownership tag
			// from the moment they exist.
			sid:       "RunTaggedHeadInstances",
			why:       "Instance and volume ids are generated; RunInstances requires the ceforge:managed=true request tag on both.",
			actions:   []string{"ec2:RunInstances"},
			resources: []string{p.ec2("instance"), p.ec2("volume")},
			cond:      requestTagged,
			regional:  true,
		},
		{
			sid:     "RunInstancesWithInputs",
			why:     "RunInstances also authorizes its inputs: user-chosen AMIs and snapshots (any owner), subnets, security groups, key pairs, launch templates, network interfaces, Spot requests, placement groups.",
			actions: []string{"ec2:RunInstances"},
			resources: []string{
				p.arn("ec2", "*", "*", "image/*"), p.arn("ec2", "*", "*", "snapshot/*"),
				p.ec2("subnet"), p.ec2("security-group"), p.ec2("network-interface"), p.ec2("key-pair"),
				p.ec2("launch-template"), p.ec2("spot-instances-request"), p.ec2("placement-group"),
			},
			regional: true,
		},
		{
			sid:       "TagOnLaunch",
			why:       "Tagging only as part of RunInstances (ec2:CreateAction).",
			actions:   []string{"ec2:CreateTags"},
			resources: []string{p.ec2("instance"), p.ec2("volume"), p.ec2("network-interface"), p.ec2("spot-instances-request")},
			cond:      createAction("RunInstances"),
			regional:  true,
		},
		{
			sid:       "TerminateOwnedInstances",
			why:       "Only instances tagged ceforge:managed=true (aws:ResourceTag).",
			actions:   []string{"ec2:TerminateInstances"},
			resources: []string{p.ec2("instance")},
			cond:      resourceTagged,
			regional:  true,
		},
		p.passRole(),
		{
			// Manual-mode compute environments use queues the user named,
			// so the queue is any; the job definition is always ours.
			sid:       "SubmitHeadJobs",
			why:       "Job definitions are ceforge's (prefix); manual-mode compute environments submit to job queues the user named.",
			actions:   []string{"batch:SubmitJob"},
			resources: []string{p.arn("batch", "*", p.account, "job-queue/*"), p.batch("job-definition")},
			regional:  true,
		},
		{
			sid:       "TagJobsOnSubmit",
			why:       "Batch job ids are generated at submission; tags only with the ceforge:managed=true request tag (the head's ownership tags).",
			actions:   []string{"batch:TagResource"},
			resources: []string{p.arn("batch", "*", p.account, "job/*")},
			cond:      requestTagged,
			regional:  true,
		},
		{
			sid:       "TerminateOwnedJobs",
			why:       "Batch job ids are generated at submission; only jobs tagged ceforge:managed=true (heads, and tasks through resourceLabels).",
			actions:   []string{"batch:TerminateJob"},
			resources: []string{p.arn("batch", "*", p.account, "job/*")},
			cond:      resourceTagged,
			regional:  true,
		},
		{
			// internal/runtoken: each run's progress token, read by its head.
			sid:       "CreateRunTokens",
			why:       "Run token secrets are named <prefix>trace/<run id> (the run id is generated at launch); creation requires the ceforge:managed=true request tag.",
			actions:   []string{"secretsmanager:CreateSecret", "secretsmanager:TagResource"},
			resources: []string{p.runTokens()},
			cond:      requestTagged,
			regional:  true,
		},
		{
			// Batch cannot override a job's image: a studio's image gets a
			// revision of the CE's <prefix><ce-id>-studio job definition at
			// its first launch.
			sid:       "RegisterStudioJobDefinitions",
			why:       "Studio job definitions named with the ceforge prefix (revisions are generated), registered only with the ceforge:managed=true request tag and never privileged (batch:Privileged).",
			actions:   []string{"batch:RegisterJobDefinition"},
			resources: []string{p.batch("job-definition")},
			cond: map[string]map[string]any{
				"StringEquals": {"aws:RequestTag/" + ManagedTagKey: ManagedTagValue},
				"Bool":         {"batch:Privileged": "false"},
			},
			regional: true,
		},
		{
			sid:       "TagStudioJobDefinitionsOnRegister",
			why:       "Studio job definitions named with the ceforge prefix; tags only with the ceforge:managed=true request tag (their ownership tags, given at registration).",
			actions:   []string{"batch:TagResource"},
			resources: []string{p.batch("job-definition")},
			cond:      requestTagged,
			regional:  true,
		},
		{
			// A Batch studio is reached on the EC2 instance behind the
			// container instance Batch reports its job on.
			sid:       "FindStudioHosts",
			why:       "Container instances of the clusters AWS Batch creates (manual-mode compute environments name theirs freely); read-only.",
			actions:   []string{"ecs:DescribeContainerInstances"},
			resources: []string{p.arn("ecs", "*", p.account, "container-instance/*")},
			regional:  true,
		},
	}...)
}

// pipelineSecrets: write the pipeline secrets runs read (internal/secret),
// <prefix>secrets/* only, created with the ownership tag; never read one.
func (p permissions) pipelineSecrets() []perm {
	secrets := p.arn("secretsmanager", "*", p.account, "secret:"+p.cfg.Prefix+"secrets/*")
	return []perm{
		{
			sid:       "CreatePipelineSecrets",
			why:       "Pipeline secrets named <prefix>secrets/* (ARNs end with a random suffix), created only with the ceforge:managed=true request tag.",
			actions:   []string{"secretsmanager:CreateSecret", "secretsmanager:TagResource"},
			resources: []string{secrets},
			cond:      requestTagged,
			regional:  true,
		},
		{
			sid:       "WritePipelineSecrets",
			why:       "Pipeline secrets named <prefix>secrets/* tagged ceforge:managed=true: a new value, the resource policy that lets only the runs' roles read it, deletion.",
			actions:   []string{"secretsmanager:PutSecretValue", "secretsmanager:PutResourcePolicy", "secretsmanager:DeleteSecret"},
			resources: []string{secrets},
			cond:      resourceTagged,
			regional:  true,
		},
		{
			// Values are the runs' roles' to read, never the control
			// plane's (nor the member role's, which holds this group).
			sid:       "NeverReadPipelineSecrets",
			deny:      true,
			actions:   []string{"secretsmanager:GetSecretValue"},
			resources: []string{secrets},
		},
	}
}

// runTokens are the runs' progress-token secrets (<prefix>trace/<run id>;
// Secrets Manager appends a random suffix to the name in the ARN).
func (p permissions) runTokens() string {
	return p.arn("secretsmanager", "*", p.account, "secret:"+p.cfg.Prefix+"trace/*")
}

// stop: end runs ceforge stops itself (a run past its cost limit): the
// head instance or job and the run's compute jobs; a run's duplicate head
// instance (a launch retried where the client token was not honoured) is
// terminated the same way (cloudce Reconcile; the IAM-checked tier found
// the reconciler lacked it before this group).
func (p permissions) stop() []perm {
	return []perm{
		{
			sid:       "StopOwnedHeadInstances",
			why:       "Only instances tagged ceforge:managed=true (aws:ResourceTag).",
			actions:   []string{"ec2:TerminateInstances"},
			resources: []string{p.ec2("instance")},
			cond:      resourceTagged,
			regional:  true,
		},
		{
			sid:       "StopRunJobs",
			why:       "Batch job ids are generated at submission; only jobs tagged ceforge:managed=true (heads, and tasks through resourceLabels).",
			actions:   []string{"batch:TerminateJob"},
			resources: []string{p.arn("batch", "*", p.account, "job/*")},
			cond:      resourceTagged,
			regional:  true,
		},
		{
			// internal/runtoken: a run's token secret goes once the run has ended.
			sid:       "DeleteRunTokens",
			why:       "Run token secrets are named <prefix>trace/<run id>; only those tagged ceforge:managed=true (aws:ResourceTag).",
			actions:   []string{"secretsmanager:DeleteSecret"},
			resources: []string{p.runTokens()},
			cond:      resourceTagged,
			regional:  true,
		},
	}
}

// logs: read run logs and artifacts.
func (p permissions) logs() []perm {
	// Reads also cover Batch's default job log group (/aws/batch/job),
	// which manual-mode compute environments use.
	groups := append(p.logGroups()[1:], p.arn("logs", "*", p.account, "log-group:/aws/batch/job*"))
	out := []perm{
		{
			sid:       "ReadRunLogs",
			why:       "Run log groups (/ceforge/*, Batch's /aws/batch/job) and their streams, in any compute environment region; read-only.",
			actions:   []string{"logs:GetLogEvents"},
			resources: groups,
			regional:  true,
		},
	}
	return append(out, p.readRunArtifacts()...)
}

// readRunArtifacts: a run's files (exit status, nextflow.log). S3 answers
// a missing object with 404 only to callers that may list the bucket (403
// otherwise), and the platforms tell "no exit status" from "no access" by
// that code, hence ListBucket on the buckets.
func (p permissions) readRunArtifacts() []perm {
	return []perm{
		{
			sid:       "ReadRunArtifacts",
			why:       "Run artifacts under <workDir>/.ceforge/runs/ in the deployment's allowed buckets; read-only.",
			actions:   []string{"s3:GetObject"},
			resources: p.runArtifacts(),
		},
		{
			sid:       "NotFoundForMissingArtifacts",
			why:       "Work directories are in the deployment's allowed buckets; ListBucket makes S3 answer 404 (not 403) for a run artifact that does not exist yet.",
			actions:   []string{"s3:ListBucket"},
			resources: p.bucketARNs(),
		},
	}
}

// events: what the event consumers read besides the table.
func (p permissions) events() []perm {
	return append(p.readRunArtifacts(), []perm{
		{
			sid:       "DescribeJobs",
			why:       "batch:DescribeJobs does not support resource-level permissions; read-only.",
			actions:   []string{"batch:DescribeJobs"},
			resources: []string{"*"},
			regional:  true,
		},
	}...)
}

// sweep: find and delete orphans that carry the ownership tag.
func (p permissions) sweep() []perm {
	return []perm{
		{
			sid: "FindOrphans",
			why: "EC2 Describe* and Batch ListJobs/DescribeJobs/DescribeJobQueues do not support resource-level permissions; read-only.",
			actions: []string{
				"ec2:DescribeVolumes", "ec2:DescribeInstances", "ec2:DescribeInstanceAttribute",
				"batch:ListJobs", "batch:DescribeJobs", "batch:DescribeJobQueues",
			},
			resources: []string{"*"},
			regional:  true,
		},
		{
			sid:       "DeleteOwnedOrphans",
			why:       "Only volumes and instances tagged ceforge:managed=true (aws:ResourceTag).",
			actions:   []string{"ec2:DeleteVolume", "ec2:TerminateInstances"},
			resources: []string{p.ec2("volume"), p.ec2("instance")},
			cond:      resourceTagged,
			regional:  true,
		},
		{
			sid:       "TerminateOrphanJobs",
			why:       "Batch job ids are generated at submission; only jobs tagged ceforge:managed=true.",
			actions:   []string{"batch:TerminateJob"},
			resources: []string{p.arn("batch", "*", p.account, "job/*")},
			cond:      resourceTagged,
			regional:  true,
		},
	}
}

// assume: the member-account roles of registered credentials, named
// <prefix>* in any account, and only with an External ID ceforge generated
// (<prefix> and hex digits): never a role without one. Which roles and
// External IDs may be assumed is decided by the credentials registry in
// code (awsclient.Factory.UseRegistry); each member role trusts only the
// control plane's function roles with its own External ID.
func (p permissions) assume() []perm {
	return []perm{{
		sid:       "AssumeMemberRoles",
		why:       "Member-account roles of registered credentials, named with the ceforge prefix in accounts registered at run time; only with a ceforge-generated External ID (sts:ExternalId), which each role's trust policy requires.",
		actions:   []string{"sts:AssumeRole"},
		resources: []string{p.arn("iam", "", "*", "role/"+p.cfg.Prefix+"*")},
		cond:      map[string]map[string]any{"StringLike": {"sts:ExternalId": p.cfg.Prefix + "*"}},
	}}
}

// bucketARNs returns the ARNs of the allowed buckets (Config.Buckets).
func (p permissions) bucketARNs() []string {
	var out []string
	for _, b := range p.cfg.Buckets() {
		out = append(out, "arn:"+p.partition+":s3:::"+b)
	}
	return out
}

// bucketResources returns the allowed buckets and their objects: a
// pattern ending in '*' names both (the wildcard spans the '/'), a bucket
// name needs its object ARN beside it.
func (p permissions) bucketResources() []string {
	var out []string
	for _, arn := range p.bucketARNs() {
		out = append(out, arn)
		if !strings.HasSuffix(arn, "*") {
			out = append(out, arn+"/*")
		}
	}
	return out
}

// boundaryPerms is the permissions boundary of every role ceforge forges
// (managed policy <prefix>boundary): the most a Nextflow head job, a task,
// a Batch container instance or an AWS Cloud head instance may ever do,
// whatever policies the role holds. What the AWS managed policies ceforge
// attaches grant beyond it (S3 read of every bucket, SSM parameters,
// X-Ray) is cut off. It grants no IAM action but passing ceforge's own
// roles to Batch and ECS tasks, so a forged role can create or change no
// identity.
func (p permissions) boundaryPerms() []perm {
	logs := append(p.logGroups(), p.arn("logs", "*", p.account, "log-group:/aws/batch/job*"))
	out := []perm{
		{
			sid: "AllowedBuckets",
			why: "Work directories, inputs and outputs in the deployment's allowed buckets (allowedBuckets, default <prefix>*) and their objects.",
			actions: []string{
				"s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads",
				"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
				"s3:ListMultipartUploadParts", "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:RestoreObject",
			},
			resources: p.bucketResources(),
		},
		{
			sid:       "NextflowBatch",
			why:       "Nextflow submits tasks to the CE's prefixed job queues with job definitions it registers (nf-*); job ids are generated.",
			actions:   []string{"batch:SubmitJob", "batch:RegisterJobDefinition", "batch:TagResource", "batch:CancelJob", "batch:TerminateJob"},
			resources: []string{p.batch("job-queue"), p.arn("batch", "*", p.account, "job-definition/*"), p.arn("batch", "*", p.account, "job/*")},
		},
		{
			sid:       "PassJobRoles",
			why:       "Nextflow passes the CE's job roles (named with the prefix) to its task job definitions; to Batch and ECS tasks only.",
			actions:   []string{"iam:PassRole"},
			resources: []string{p.prefixedRoles()},
			cond:      map[string]map[string]any{"StringEquals": {"iam:PassedToService": []string{forgedrole.PrincipalBatch, forgedrole.PrincipalECSTasks}}},
		},
		{
			// One statement: these take no resource-level permissions, or
			// name resources Batch and ECS create with generated names.
			sid: "Agents",
			why: "Describe/List calls (Nextflow, CloudWatch agent), the ECS agent on Batch instances (clusters and container instances Batch names), ECR pulls, SSM Agent registration, Session Manager and Run Command channels (no inventory, patching or associations): no resource-level permissions or generated names.",
			actions: []string{
				"batch:DescribeJobs", "batch:ListJobs", "batch:DescribeJobQueues", "batch:DescribeComputeEnvironments", "batch:DescribeJobDefinitions",
				"ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceAttribute", "ec2:DescribeInstanceTypes",
				"ec2:DescribeTags", "ec2:DescribeVolumes", "ec2:DescribeVolumeStatus", "ec2:DescribeVolumeAttribute",
				"ecs:DescribeTasks", "ecs:DescribeContainerInstances", "ecs:DiscoverPollEndpoint", "ecs:CreateCluster",
				"ecs:RegisterContainerInstance", "ecs:DeregisterContainerInstance", "ecs:Poll", "ecs:StartTelemetrySession",
				"ecs:UpdateContainerInstancesState", "ecs:SubmitAttachmentStateChanges", "ecs:SubmitContainerStateChange",
				"ecs:SubmitTaskStateChange", "ecs:ListTagsForResource", "ecs:TagResource",
				"ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage",
				"logs:DescribeLogGroups", "cloudwatch:PutMetricData",
				"ssm:UpdateInstanceInformation", "ssm:ListInstanceAssociations",
				"ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
				"ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint",
				"ec2messages:GetMessages", "ec2messages:SendReply",
			},
			resources: []string{"*"},
		},
		{
			sid:       "WriteLogs",
			why:       "Container and console logs into any log group of the account (a CE may name its own); writes only.",
			actions:   []string{"logs:CreateLogStream", "logs:PutLogEvents"},
			resources: []string{p.arn("logs", "*", p.account, "log-group:*")},
		},
		{
			sid:       "RunLogs",
			why:       "Log groups of runs and Batch jobs (/aws/batch/job*, /ceforge/*, the run log group): task logs, the run log group.",
			actions:   []string{"logs:GetLogEvents", "logs:DescribeLogStreams", "logs:CreateLogGroup", "logs:PutRetentionPolicy"},
			resources: logs,
		},
		{
			sid:       "AwsParameters",
			why:       "SSM parameters: AWS public ones (/aws/service/) and the CloudWatch agent's (AmazonCloudWatch-*) only.",
			actions:   []string{"ssm:GetParameter", "ssm:GetParameters"},
			resources: []string{p.arn("ssm", "*", "*", "parameter/aws/service/*"), p.arn("ssm", "*", p.account, "parameter/AmazonCloudWatch-*")},
		},
		{
			sid:       "FileSystems",
			why:       "EFS mounts with IAM authorization; file systems of forged and user-supplied CEs.",
			actions:   []string{"elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:DescribeMountTargets"},
			resources: []string{p.arn("elasticfilesystem", "*", p.account, "file-system/*")},
		},
		{
			sid:       "GrowOwnInstances",
			why:       "EBS auto-scaling grows disks of ceforge's instances, and deletes its volumes (tagged like the instance), only (aws:ResourceTag ceforge:managed=true).",
			actions:   []string{"ec2:AttachVolume", "ec2:ModifyInstanceAttribute", "ec2:DeleteVolume"},
			resources: []string{p.ec2("instance"), p.ec2("volume")},
			cond:      resourceTagged,
		},
		{
			// amazon-ebs-autoscale copies the instance's tags onto every
			// volume it creates, in the CreateVolume call itself.
			sid:       "AutoScaleVolumes",
			why:       "EBS auto-scaling creates volumes of generated ids, only tagged ceforge:managed=true at creation (aws:RequestTag).",
			actions:   []string{"ec2:CreateVolume"},
			resources: []string{p.ec2("volume")},
			cond:      requestTagged,
		},
		{
			sid:       "TagVolumesAtCreation",
			why:       "Volumes of generated ids, tagged only within the CreateVolume call (ec2:CreateAction).",
			actions:   []string{"ec2:CreateTags"},
			resources: []string{p.ec2("volume")},
			cond:      map[string]map[string]any{"StringEquals": {"ec2:CreateAction": "CreateVolume"}},
		},
		{
			// forge/hostinit: a host whose setup failed says so on itself,
			// for the reconciler to report.
			sid:       "ReportHostSetup",
			why:       "ceforge's instances (aws:ResourceTag ceforge:managed=true), the host-setup tag key only (aws:TagKeys).",
			actions:   []string{"ec2:CreateTags"},
			resources: []string{p.ec2("instance")},
			cond: map[string]map[string]any{
				"StringEquals":              {"aws:ResourceTag/" + ManagedTagKey: ManagedTagValue},
				"ForAllValues:StringEquals": {"aws:TagKeys": []string{hostinit.SetupTag}},
			},
		},
		{
			sid:       "PrefixedSecrets",
			why:       "Secrets named with the ceforge prefix only.",
			actions:   []string{"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"},
			resources: []string{p.arn("secretsmanager", "*", p.account, "secret:"+p.cfg.Prefix+"*")},
		},
		{
			sid:       "KeysViaS3",
			why:       "KMS keys of encrypted buckets and secrets, only as S3 or Secrets Manager use them (kms:ViaService).",
			actions:   []string{"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo"},
			resources: []string{p.arn("kms", "*", p.account, "key/*")},
			cond:      map[string]map[string]any{"StringLike": {"kms:ViaService": []string{"s3.*.amazonaws.com", "secretsmanager.*.amazonaws.com"}}},
		},
	}
	if len(p.cfg.AllowedRegions) > 0 {
		// One Deny instead of a region condition on every statement: the
		// boundary must stay within one managed policy's size.
		out = append(out, perm{
			sid: "AllowedRegionsOnly", deny: true,
			notActions: []string{"s3:*", "iam:PassRole"},
			resources:  []string{"*"},
			cond:       map[string]map[string]any{"StringNotEquals": {"aws:RequestedRegion": slices.Clone(p.cfg.AllowedRegions)}},
		})
	}
	return out
}

// statements turns perms into CDK statements, and their wildcard resources
// into cdk-nag IAM5 suppressions that carry each statement's reason. A
// wildcard action, or a wildcard resource without a reason, is a
// programming error.
func (p permissions) statements(perms []perm) ([]awsiam.PolicyStatement, []*cdknag.NagPackSuppression) {
	out := make([]awsiam.PolicyStatement, 0, len(perms))
	var sup []*cdknag.NagPackSuppression
	for _, s := range perms {
		for _, a := range s.actions {
			if strings.Contains(a, "*") {
				panic("wildcard action " + a + " in " + s.sid)
			}
		}
		var findings []any
		for _, r := range s.resources {
			if strings.Contains(r, "*") && !s.deny {
				findings = append(findings, "Resource::"+p.nagForm(r))
			}
		}
		if len(findings) > 0 {
			if s.why == "" {
				panic("statement " + s.sid + " has wildcard resources and no reason")
			}
			sup = append(sup, &cdknag.NagPackSuppression{
				Id:        jsii.String("AwsSolutions-IAM5"),
				Reason:    jsii.String(s.sid + ": " + s.why),
				AppliesTo: &findings,
			})
		}
		cond := map[string]any{}
		for op, kv := range s.cond {
			cond[op] = maps.Clone(kv)
		}
		if s.regional && len(p.cfg.AllowedRegions) > 0 {
			eq, _ := cond["StringEquals"].(map[string]any)
			if eq == nil {
				eq = map[string]any{}
			}
			eq["aws:RequestedRegion"] = slices.Clone(p.cfg.AllowedRegions)
			cond["StringEquals"] = eq
		}
		effect := awsiam.Effect_ALLOW
		if s.deny {
			effect = awsiam.Effect_DENY
		}
		props := &awsiam.PolicyStatementProps{
			Sid:       jsii.String(s.sid),
			Effect:    effect,
			Resources: jsii.Strings(s.resources...),
		}
		if len(s.notActions) > 0 {
			if !s.deny {
				panic("NotAction in an Allow statement " + s.sid)
			}
			props.NotActions = jsii.Strings(s.notActions...)
		} else {
			props.Actions = jsii.Strings(s.actions...)
		}
		if len(cond) > 0 {
			props.Conditions = &cond
		}
		out = append(out, awsiam.NewPolicyStatement(props))
	}
	return out, sup
}

// nagForm renders a resource the way cdk-nag names its findings
// (pseudo-parameter tokens as <AWS::Name>).
func (p permissions) nagForm(resource string) string {
	return strings.NewReplacer(p.partition, "<AWS::Partition>", p.account, "<AWS::AccountId>").Replace(resource)
}

// Policies are the permission groups as managed policies.
type Policies struct {
	ByGroup map[string]awsiam.ManagedPolicy
	// Boundary is the permissions boundary of every role ceforge forges.
	Boundary awsiam.ManagedPolicy
}

// Permission group names (the managed policies' construct ids).
const (
	GroupValidate       = "Validate"
	GroupCreateIdentity = "CreateIdentity"
	GroupCreate         = "Create"
	GroupDelete         = "Delete"
	GroupLaunch         = "Launch"
	GroupObserve        = "Observe"
	GroupLogs           = "Logs"
	GroupEvents         = "Events"
	GroupSweep          = "Sweep"
	GroupAssume         = "Assume"
	// GroupSecrets writes pipeline secrets (never reads one); the member
	// role holds it as part of launch.
	GroupSecrets = "Secrets"
	GroupStop    = "Stop"
)

// FunctionGroups says which permission groups each function holds. The api
// validates, launches and reads logs; every step that creates or deletes a
// compute environment's resources it hands to the reconciler (an
// asynchronous invoke), so it holds neither create nor delete.
var FunctionGroups = map[string][]string{
	FnAPI:         {GroupValidate, GroupLaunch, GroupSecrets, GroupLogs, GroupAssume},
	FnReconciler:  {GroupValidate, GroupCreateIdentity, GroupCreate, GroupDelete, GroupObserve, GroupStop, GroupAssume},
	FnBatchEvents: {GroupEvents, GroupAssume},
	FnEC2Events:   {GroupEvents, GroupAssume},
	FnLogs:        {GroupLogs, GroupAssume},
	FnSweeper:     {GroupSweep, GroupAssume},
	// The trace function calls no AWS service but its table (with
	// fine-grained access, Data.grantTrace) and the reconciler.
	FnTrace: {},
}

func newPolicies(scope constructs.Construct, cfg Config, fns *Functions, data *Data) *Policies {
	c := constructs.NewConstruct(scope, jsii.String("Permissions"))
	p := newPermissions(cfg)
	// The boundary first: the reconciler's IAM conditions name its ARN.
	bstmts, bsup := p.statements(p.boundaryPerms())
	boundary := awsiam.NewManagedPolicy(c, jsii.String("Boundary"), &awsiam.ManagedPolicyProps{
		ManagedPolicyName: jsii.String(forgedrole.BoundaryName(cfg.Prefix)),
		Description:       jsii.String("ceforge permissions boundary: the most any role ceforge forges (" + cfg.Prefix + "*) may ever do"),
		Statements:        &bstmts,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(boundary, &bsup, jsii.Bool(false))
	p.boundary = *boundary.ManagedPolicyArn()
	for _, name := range FunctionNames {
		fns.Fn[name].AddEnvironment(jsii.String("CEFORGE_PERMISSIONS_BOUNDARY"), boundary.ManagedPolicyArn(), nil)
	}
	groups := []struct {
		name, description string
		perms             []perm
	}{
		{GroupValidate, "validate: read-only checks of compute environment inputs", p.validate()},
		{GroupCreateIdentity, "create: forge compute environment roles and instance profiles named " + cfg.Prefix + "*", p.createIdentity()},
		{GroupCreate, "create: forge compute environment resources named " + cfg.Prefix + "* or tagged " + ManagedTagKey, p.create()},
		{GroupDelete, "delete: dispose of forged compute environment resources", p.delete()},
		{GroupLaunch, "launch: start, tag and stop runs (EC2 head instances, Batch head jobs)", p.launch()},
		{GroupSecrets, "secrets: write the pipeline secrets runs read (" + cfg.Prefix + "secrets/*), never read one", p.pipelineSecrets()},
		{GroupObserve, "observe: read run backends (instances, jobs) and run artifacts", append(p.observe(), p.readRunArtifacts()...)},
		{GroupLogs, "logs: read run logs and run artifacts", p.logs()},
		{GroupEvents, "events: read what Batch/EC2 events refer to", p.events()},
		{GroupSweep, "sweep: find and delete orphaned ceforge-owned resources", p.sweep()},
		{GroupAssume, "assume: cross-account compute environment credentials (roles " + cfg.Prefix + "*)", p.assume()},
		{GroupStop, "stop: end runs over their cost limit (owned head instances, run jobs) and delete ended runs' token secrets", p.stop()},
	}
	pol := &Policies{ByGroup: map[string]awsiam.ManagedPolicy{}, Boundary: boundary}
	for _, g := range groups {
		stmts, sup := p.statements(g.perms)
		mp := awsiam.NewManagedPolicy(c, jsii.String(g.name), &awsiam.ManagedPolicyProps{
			Description: jsii.String("ceforge " + g.description),
			Statements:  &stmts,
		})
		if len(sup) > 0 {
			cdknag.NagSuppressions_AddResourceSuppressions(mp, &sup, jsii.Bool(false))
		}
		pol.ByGroup[g.name] = mp
	}
	for _, name := range FunctionNames {
		for _, g := range FunctionGroups[name] {
			fns.Role[name].AddManagedPolicy(pol.ByGroup[g])
		}
		if name == FnTrace {
			data.grantTrace(fns.Role[name])
			continue
		}
		data.grant(fns.Role[name], name != FnLogs)
		if name == FnLogs {
			data.grantLeases(fns.Role[name])
		}
	}
	return pol
}
