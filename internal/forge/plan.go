package forge

import (
	"github.com/ceforge/ceforge/internal/computeenv"
)

// Plan lists, in creation order, what Apply creates ("create") and what it
// relies on that exists already ("use"). It is deterministic: the same
// options give the same plan.
func (d Design) Plan() computeenv.Plan {
	var out []computeenv.PlannedResource
	add := func(action, typ, name string, props map[string]any) {
		out = append(out, computeenv.PlannedResource{Action: action, Type: typ, Name: name, Properties: props})
	}
	for _, r := range d.Roles {
		props := map[string]any{"assumeRolePolicy": TrustPolicy(r.Principal), "trustedService": r.Principal, "permissionsBoundary": d.Boundary}
		if len(r.Managed) > 0 {
			props["managedPolicies"] = r.Managed
		}
		if r.Inline != nil {
			props["inlinePolicy"] = JSON(r.Inline)
		}
		props["tags"] = map[string]string(d.Tags)
		add("create", TypeRole, r.Name, props)
		if r.Profile {
			add("create", TypeInstanceProfile, r.Name, map[string]any{"role": r.Name})
		}
	}
	if len(d.ComputeEnvs) > 0 {
		add("use", TypeRole, BatchServiceLinkedRole, map[string]any{"purpose": "service role of the Batch compute environments (created by IAM when the account has none)"})
	}
	for _, u := range []struct{ field, arn string }{{"headJobRole", d.HeadJobRoleARN}, {"computeJobRole", d.ComputeJobRoleARN}, {"executionRole", d.ExecutionRoleARN}} {
		if u.arn != "" {
			add("use", TypeRole, u.arn, map[string]any{"option": "batch." + u.field})
		}
	}
	if d.CreateLogGroup {
		add("create", TypeLogGroup, d.LogGroup, map[string]any{"tags": map[string]string(d.Tags)})
	} else {
		add("use", TypeLogGroup, d.LogGroup, nil)
	}
	switch {
	case d.EFSCreate:
		add("create", TypeEFS, d.Names.Base, map[string]any{"creationToken": d.Names.Base, "encrypted": true, "mountPath": d.EFSMount, "mountTargetSubnets": d.Subnets, "securityGroups": d.SecurityGroups})
	case d.EFSID != "":
		add("use", TypeEFS, d.EFSID, map[string]any{"mountPath": d.EFSMount})
	}
	switch {
	case d.FSxCreate:
		add("create", TypeFSx, d.Names.Base, map[string]any{"fileSystemType": "LUSTRE", "deploymentType": "SCRATCH_2", "storageCapacityGiB": d.FSxSize, "mountPath": d.FSxMount, "subnet": first(d.Subnets)})
	case d.FSxDNSName != "":
		add("use", TypeFSx, d.FSxDNSName, map[string]any{"mountPath": d.FSxMount})
	}
	lt := map[string]any{
		"metadataOptions":   map[string]any{"httpTokens": "required", "httpPutResponseHopLimit": 2},
		"bootDisk":          map[string]any{"deviceName": "/dev/xvda", "sizeGiB": d.BootDiskGiB, "volumeType": bootType(d), "throughputMBps": d.BootThroughput},
		"tagSpecifications": map[string]any{"instance": map[string]string(d.Tags), "volume": map[string]string(d.Tags)},
		"ecsConfig":         d.EcsConfig,
	}
	add("create", TypeLaunchTemplate, d.Names.LaunchTemplate, lt)
	for _, c := range d.ComputeEnvs {
		props := map[string]any{"type": c.Type, "maxvCpus": c.MaxCpus, "subnets": d.Subnets, "securityGroupIds": d.SecurityGroups, "serviceRole": BatchServiceLinkedRole}
		if c.Type != "FARGATE" {
			props["minvCpus"] = c.MinCpus
			props["instanceTypes"] = c.InstanceTypes
			props["allocationStrategy"] = c.AllocStrategy
			props["instanceRole"] = d.Names.InstanceRole
			props["launchTemplate"] = d.Names.LaunchTemplate
			props["imageType"] = c.ImageType
			if c.ImageID != "" {
				props["imageId"] = c.ImageID
			}
			if c.AMIParam != "" {
				props["imageIdFromSsm"] = c.AMIParam
			}
			if c.BidPercentage > 0 {
				props["bidPercentage"] = c.BidPercentage
			}
			if c.KeyPair != "" {
				props["ec2KeyPair"] = c.KeyPair
			}
		}
		add("create", TypeComputeEnv, c.Name, props)
	}
	for _, q := range d.Queues {
		props := map[string]any{"priority": q.Priority, "computeEnvironmentOrder": []map[string]any{{"order": 1, "computeEnvironment": q.CE}}}
		if q.TimeLimits {
			props["jobStateTimeLimitActions"] = TimeLimitActions()
		}
		add("create", TypeJobQueue, q.Name, props)
	}
	jd := map[string]any{"image": NextflowImage, "vcpus": d.HeadCpus, "memoryMiB": d.HeadMemoryMb, "logGroup": d.LogGroup, "propagateTags": true}
	if d.FargateHead {
		jd["platformCapabilities"] = []string{"FARGATE"}
	}
	add("create", TypeJobDefinition, d.Names.JobDefinition, jd)
	return computeenv.Plan{Resources: out}
}

func bootType(d Design) string {
	if d.BootDiskGP3 {
		return "gp3"
	}
	return "gp2"
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// TimeLimit is one job-state time-limit action of the compute queue.
type TimeLimit struct {
	Reason  string `json:"reason"`
	State   string `json:"state"`
	MaxSecs int    `json:"maxTimeSeconds"`
	Action  string `json:"action"`
}

// timeLimitActions cancel jobs that can never run (no instance type fits
// them, or they ask more than the CE's max CPUs) and jobs waiting too long
// for capacity, instead of letting them sit RUNNABLE forever.
// TimeLimitActions are the compute queue's job-state time limits (plan and forge agree).
func TimeLimitActions() []TimeLimit {
	return []TimeLimit{
		{Reason: "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", State: "RUNNABLE", MaxSecs: RunnableTimeLimitSecs, Action: "CANCEL"},
		{Reason: "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", State: "RUNNABLE", MaxSecs: RunnableTimeLimitSecs, Action: "CANCEL"},
		{Reason: "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", State: "RUNNABLE", MaxSecs: CapacityTimeLimitSecs, Action: "CANCEL"},
	}
}
