package iamcheck

import (
	"context"
	"regexp"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Request is one authorization AWS makes for a call: an action on one
// resource with the request's condition keys. One call may need several
// (RunInstances authorizes the instance, its volumes, image, subnet,
// security groups, network interface, the role it passes, the tags it
// sets).
type Request struct {
	Action   string         `json:"action"`
	Resource string         `json:"resource"`
	Context  map[string]any `json:"context,omitempty"` // string or []string values
}

// mapping turns one operation's calls into requests. facts, when set,
// reads what the requests depend on before the call is made.
type mapping struct {
	facts func(ctx context.Context, c *Call, l *Lookup)
	// after reads facts that only the call's outcome tells (what EC2 chose
	// for a request that did not say).
	after    func(ctx context.Context, c *Call, l *Lookup)
	requests func(c *Call) []Request
	// waive names resource types iam-data marks required for an action
	// that AWS does not authorize for this call, each with its source.
	waive map[string][]string
}

// mappings by "Service.Operation" (SDK service id). An operation missing
// here fails the test that calls it: add its mapping (iam-data then checks
// the ARNs and condition keys it produces against the action's resource
// types).
var mappings = map[string]mapping{}

func register(service string, ops map[string]mapping) {
	for op, m := range ops {
		mappings[service+"."+op] = m
	}
}

// Covered lists the operations the tier can map, sorted.
func Covered() []string {
	out := make([]string, 0, len(mappings))
	for k := range mappings {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// iamPrefix is the IAM service prefix of an SDK service id.
var iamPrefix = map[string]string{
	"EC2": "ec2", "Batch": "batch", "IAM": "iam", "S3": "s3", "DynamoDB": "dynamodb",
	"CloudWatch Logs": "logs", "SSM": "ssm", "STS": "sts", "Lambda": "lambda", "EFS": "elasticfilesystem",
	"FSx": "fsx", "SQS": "sqs", "Secrets Manager": "secretsmanager", "KMS": "kms", "SNS": "sns", "ECS": "ecs",
}

// input returns a call's input as T (the zero value if it is not one).
func input[T any](c *Call) T {
	v, _ := c.Input.(T)
	return v
}

func output[T any](c *Call) T {
	v, _ := c.Output.(T)
	return v
}

// simple maps an operation to its namesake action on the resources res
// returns ("*" when it returns none).
func simple(res func(c *Call) []string) mapping {
	return mapping{requests: func(c *Call) []Request {
		action := iamPrefix[c.Service] + ":" + c.Operation
		rs := []string{"*"}
		if res != nil {
			rs = res(c)
		}
		out := make([]Request, 0, len(rs))
		for _, r := range rs {
			out = append(out, Request{Action: action, Resource: r})
		}
		return out
	}}
}

// wildcard is an operation whose action takes no resource type.
var wildcard = simple(nil)

func (c *Call) arn(service, resource string) string {
	return "arn:" + Partition + ":" + service + ":" + c.Region + ":" + c.Account() + ":" + resource
}

func (c *Call) globalARN(service, resource string) string {
	return "arn:" + Partition + ":" + service + "::" + c.Account() + ":" + resource
}

func arnAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

// orARN returns s if it is an ARN, else the ARN build makes of it.
func orARN(s string, build func(string) string) string {
	if strings.HasPrefix(s, "arn:") {
		return s
	}
	return build(s)
}

func roleARN(c *Call, name string) string {
	return orARN(name, func(n string) string { return c.globalARN("iam", "role/"+n) })
}

func profileARN(c *Call, name string) string {
	return orARN(name, func(n string) string { return c.globalARN("iam", "instance-profile/"+n) })
}

// ec2ARN is the ARN of an EC2 resource by its id.
func ec2ARN(c *Call, id string) string {
	kinds := []struct{ prefix, kind string }{
		{"i-", "instance"}, {"vol-", "volume"}, {"lt-", "launch-template"}, {"sg-", "security-group"},
		{"subnet-", "subnet"}, {"eni-", "network-interface"}, {"sir-", "spot-instances-request"}, {"vpc-", "vpc"},
		{"ami-", "image"}, {"snap-", "snapshot"}, {"key-", "key-pair"},
	}
	for _, k := range kinds {
		if strings.HasPrefix(id, k.prefix) {
			if k.kind == "image" || k.kind == "snapshot" {
				return "arn:" + Partition + ":ec2:" + c.Region + "::" + k.kind + "/" + id
			}
			return c.arn("ec2", k.kind+"/"+id)
		}
	}
	return c.arn("ec2", "unknown/"+id)
}

// requestTags are the aws:RequestTag/… and aws:TagKeys keys of tags set by
// a request.
func requestTags(tags map[string]string) map[string]any {
	if len(tags) == 0 {
		return nil
	}
	out := map[string]any{}
	keys := make([]string, 0, len(tags))
	for k, v := range tags {
		out["aws:RequestTag/"+k] = v
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out["aws:TagKeys"] = keys
	return out
}

// resourceTags are the aws:ResourceTag/… keys of a resource (Facts).
func resourceTags(c *Call, arn string) map[string]any {
	out := map[string]any{}
	for k, v := range c.Facts.Tags[arn] {
		out["aws:ResourceTag/"+k] = v
	}
	return out
}

func merge(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func ec2Tags(tags []ec2types.Tag) map[string]string {
	out := map[string]string{}
	for _, t := range tags {
		out[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return out
}

func iamTags(tags []iamtypes.Tag) map[string]string {
	out := map[string]string{}
	for _, t := range tags {
		out[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return out
}

// tagSpecs are the tags of TagSpecifications by resource type.
func tagSpecs(specs []ec2types.TagSpecification) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, s := range specs {
		t := string(s.ResourceType)
		if out[t] == nil {
			out[t] = map[string]string{}
		}
		for k, v := range ec2Tags(s.Tags) {
			out[t][k] = v
		}
	}
	return out
}

// tagOnCreate is ec2:CreateTags as part of a create action: EC2 authorizes
// it for each resource type the request tags.
func tagOnCreate(c *Call, action string, specs map[string]map[string]string) []Request {
	types := make([]string, 0, len(specs))
	for t := range specs {
		types = append(types, t)
	}
	sort.Strings(types)
	var out []Request
	for _, t := range types {
		out = append(out, Request{Action: "ec2:CreateTags", Resource: c.arn("ec2", t+"/*"),
			Context: merge(requestTags(specs[t]), map[string]any{"ec2:CreateAction": action})})
	}
	return out
}

// viaService is the context of a request an AWS service makes with the
// caller's credentials on the caller's behalf (a forward access session,
// such as the network interfaces of an EFS mount target): AWS sets
// aws:ViaAWSService, which a policy can require so the caller itself may
// not make the call.
func viaService() map[string]any { return map[string]any{"aws:ViaAWSService": "true"} }

// passRole is iam:PassRole of role to service.
func passRole(c *Call, role, service string) Request {
	return Request{Action: "iam:PassRole", Resource: roleARN(c, role), Context: map[string]any{"iam:PassedToService": service}}
}

// passProfile passes the roles of an instance profile (Facts).
func passProfile(c *Call, profile, service string) []Request {
	var out []Request
	for _, r := range c.Facts.ProfileRoles[profile] {
		out = append(out, passRole(c, r, service))
	}
	return out
}

func init() {
	register("EC2", ec2Mappings())
	register("Batch", batchMappings())
	register("IAM", iamMappings())
	register("S3", s3Mappings())
	register("DynamoDB", dynamoMappings())
	register("CloudWatch Logs", logsMappings())
	register("SSM", ssmMappings())
	register("STS", stsMappings())
	register("Lambda", lambdaMappings())
	register("EFS", efsMappings())
	register("FSx", fsxMappings())
	register("Secrets Manager", secretsMappings())
	register("ECS", ecsMappings())
}

func ec2Mappings() map[string]mapping {
	m := map[string]mapping{}
	for _, op := range []string{
		"DescribeAccountAttributes", "DescribeAvailabilityZones", "DescribeImages", "DescribeInstanceTypeOfferings",
		"DescribeInstanceTypes", "DescribeKeyPairs", "DescribeLaunchTemplates", "DescribeLaunchTemplateVersions",
		"DescribeSecurityGroups", "DescribeSubnets", "DescribeVpcs", "DescribeInstances", "DescribeInstanceStatus",
		"DescribeSpotInstanceRequests", "DescribeVolumes", "DescribeNetworkInterfaces", "DescribeTags", "DescribeVolumeStatus",
	} {
		m[op] = wildcard
	}
	m["DescribeInstanceAttribute"] = simple(func(c *Call) []string {
		return []string{ec2ARN(c, aws.ToString(input[*ec2.DescribeInstanceAttributeInput](c).InstanceId))}
	})
	m["RunInstances"] = mapping{facts: func(ctx context.Context, c *Call, l *Lookup) {
		in := input[*ec2.RunInstancesInput](c)
		if p := in.IamInstanceProfile; p != nil {
			l.profileRoles(ctx, c, aws.ToString(p.Arn)+aws.ToString(p.Name))
		}
		if len(in.SecurityGroupIds) == 0 && len(in.NetworkInterfaces) == 0 {
			l.defaultGroups(ctx, c, aws.ToString(in.SubnetId))
		}
	}, requests: runInstances}
	// A network interface the caller creates itself (EFS and FSx create
	// theirs through forward access sessions: their own mappings).
	m["CreateNetworkInterface"] = mapping{requests: func(c *Call) []Request {
		in := input[*ec2.CreateNetworkInterfaceInput](c)
		specs := tagSpecs(in.TagSpecifications)
		out := []Request{
			{Action: "ec2:CreateNetworkInterface", Resource: c.arn("ec2", "network-interface/*"), Context: requestTags(specs["network-interface"])},
			{Action: "ec2:CreateNetworkInterface", Resource: ec2ARN(c, aws.ToString(in.SubnetId))},
		}
		for _, g := range in.Groups {
			out = append(out, Request{Action: "ec2:CreateNetworkInterface", Resource: ec2ARN(c, g)})
		}
		return append(out, tagOnCreate(c, "CreateNetworkInterface", specs)...)
	}}
	m["TerminateInstances"] = ownedEC2(func(c *Call) []string { return input[*ec2.TerminateInstancesInput](c).InstanceIds })
	m["DeleteVolume"] = ownedEC2(func(c *Call) []string { return []string{aws.ToString(input[*ec2.DeleteVolumeInput](c).VolumeId)} })
	m["CreateTags"] = mapping{
		facts: func(ctx context.Context, c *Call, l *Lookup) {
			l.ec2Tags(ctx, c, input[*ec2.CreateTagsInput](c).Resources)
		},
		requests: func(c *Call) []Request {
			in := input[*ec2.CreateTagsInput](c)
			var out []Request
			for _, id := range in.Resources {
				arn := ec2ARN(c, id)
				out = append(out, Request{Action: "ec2:CreateTags", Resource: arn, Context: merge(requestTags(ec2Tags(in.Tags)), resourceTags(c, arn))})
			}
			return out
		},
	}
	m["DeleteTags"] = mapping{
		facts: func(ctx context.Context, c *Call, l *Lookup) {
			l.ec2Tags(ctx, c, input[*ec2.DeleteTagsInput](c).Resources)
		},
		requests: func(c *Call) []Request {
			in := input[*ec2.DeleteTagsInput](c)
			var keys []string
			for _, t := range in.Tags {
				keys = append(keys, aws.ToString(t.Key))
			}
			sort.Strings(keys)
			var out []Request
			for _, id := range in.Resources {
				arn := ec2ARN(c, id)
				ctx := resourceTags(c, arn)
				if len(keys) > 0 {
					ctx["aws:TagKeys"] = keys
				}
				out = append(out, Request{Action: "ec2:DeleteTags", Resource: arn, Context: ctx})
			}
			return out
		},
	}
	m["CreateLaunchTemplate"] = mapping{requests: func(c *Call) []Request {
		specs := tagSpecs(input[*ec2.CreateLaunchTemplateInput](c).TagSpecifications)
		out := []Request{{Action: "ec2:CreateLaunchTemplate", Resource: c.arn("ec2", "launch-template/*"), Context: requestTags(specs["launch-template"])}}
		return append(out, tagOnCreate(c, "CreateLaunchTemplate", specs)...)
	}}
	m["DeleteLaunchTemplate"] = mapping{
		facts: func(ctx context.Context, c *Call, l *Lookup) {
			in := input[*ec2.DeleteLaunchTemplateInput](c)
			l.launchTemplate(ctx, c, in.LaunchTemplateId, in.LaunchTemplateName)
		},
		requests: func(c *Call) []Request {
			in := input[*ec2.DeleteLaunchTemplateInput](c)
			id := aws.ToString(in.LaunchTemplateId)
			if id == "" {
				id = c.Facts.IDs["launch-template:"+aws.ToString(in.LaunchTemplateName)]
			}
			if id == "" {
				id = "lt-unknown" // not found: AWS still authorizes a launch template
			}
			arn := ec2ARN(c, id)
			return []Request{{Action: "ec2:DeleteLaunchTemplate", Resource: arn, Context: resourceTags(c, arn)}}
		},
	}
	return m
}

// ownedEC2 is an action on existing EC2 resources, with their tags.
func ownedEC2(ids func(c *Call) []string) mapping {
	return mapping{
		facts: func(ctx context.Context, c *Call, l *Lookup) { l.ec2Tags(ctx, c, ids(c)) },
		requests: func(c *Call) []Request {
			var out []Request
			for _, id := range ids(c) {
				arn := ec2ARN(c, id)
				out = append(out, Request{Action: "ec2:" + c.Operation, Resource: arn, Context: resourceTags(c, arn)})
			}
			return out
		},
	}
}

// runInstances authorizes everything RunInstances creates and uses: the
// instance, its volumes, network interface and Spot request (created: "*"
// ids, the request's tags), the image, subnet, security groups, key pair
// and launch template it names (or that EC2 picked, from the output), the
// tags it sets (ec2:CreateTags with ec2:CreateAction) and the role of the
// instance profile it passes.
func runInstances(c *Call) []Request {
	in := input[*ec2.RunInstancesInput](c)
	out := output[*ec2.RunInstancesOutput](c)
	specs := tagSpecs(in.TagSpecifications)
	run := func(resource string, ctx map[string]any) Request {
		return Request{Action: "ec2:RunInstances", Resource: resource, Context: ctx}
	}
	inst := requestTags(specs["instance"])
	if inst == nil {
		inst = map[string]any{}
	}
	if in.InstanceType != "" {
		inst["ec2:InstanceType"] = string(in.InstanceType)
	}
	if mo := in.MetadataOptions; mo != nil && mo.HttpTokens != "" {
		inst["ec2:MetadataHttpTokens"] = string(mo.HttpTokens)
	}
	market := "on-demand"
	if mo := in.InstanceMarketOptions; mo != nil && mo.MarketType == ec2types.MarketTypeSpot {
		market = "spot"
	}
	inst["ec2:InstanceMarketType"] = market
	profile := ""
	if p := in.IamInstanceProfile; p != nil {
		profile = aws.ToString(p.Arn) + aws.ToString(p.Name)
		inst["ec2:InstanceProfile"] = profileARN(c, profile)
	}
	reqs := []Request{run(c.arn("ec2", "instance/*"), inst)}

	vol := requestTags(specs["volume"])
	volumes := 0
	for _, bd := range in.BlockDeviceMappings {
		if bd.Ebs == nil {
			continue
		}
		ctx := merge(vol)
		if bd.Ebs.Encrypted != nil {
			ctx["ec2:Encrypted"] = boolString(*bd.Ebs.Encrypted)
		}
		if bd.Ebs.VolumeType != "" {
			ctx["ec2:VolumeType"] = string(bd.Ebs.VolumeType)
		}
		reqs = append(reqs, run(c.arn("ec2", "volume/*"), ctx))
		volumes++
	}
	if volumes == 0 { // the AMI's root volume
		reqs = append(reqs, run(c.arn("ec2", "volume/*"), vol))
	}
	reqs = append(reqs, run(c.arn("ec2", "network-interface/*"), requestTags(specs["network-interface"])))
	if market == "spot" {
		reqs = append(reqs, run(c.arn("ec2", "spot-instances-request/*"), requestTags(specs["spot-instances-request"])))
	}
	if id := aws.ToString(in.ImageId); id != "" {
		reqs = append(reqs, run(ec2ARN(c, id), nil))
	}
	subnet := aws.ToString(in.SubnetId)
	groups := append([]string{}, in.SecurityGroupIds...)
	if out != nil && len(out.Instances) > 0 && subnet == "" {
		subnet = aws.ToString(out.Instances[0].SubnetId)
	}
	if len(groups) == 0 { // the VPC's default group, which EC2 picked
		groups = c.Facts.Groups
	}
	if subnet != "" {
		reqs = append(reqs, run(ec2ARN(c, subnet), nil))
	}
	for _, g := range groups {
		reqs = append(reqs, run(ec2ARN(c, g), nil))
	}
	if k := aws.ToString(in.KeyName); k != "" {
		reqs = append(reqs, run(c.arn("ec2", "key-pair/"+k), nil))
	}
	if lt := in.LaunchTemplate; lt != nil && lt.LaunchTemplateId != nil {
		reqs = append(reqs, run(ec2ARN(c, *lt.LaunchTemplateId), nil))
	}
	reqs = append(reqs, tagOnCreate(c, "RunInstances", specs)...)
	if profile != "" {
		reqs = append(reqs, passProfile(c, profile, "ec2.amazonaws.com")...)
	}
	return reqs
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func batchMappings() map[string]mapping {
	m := map[string]mapping{}
	for _, op := range []string{"DescribeComputeEnvironments", "DescribeJobDefinitions", "DescribeJobQueues", "DescribeJobs", "ListJobs"} {
		m[op] = wildcard
	}
	ce := func(c *Call, name string) string {
		return orARN(name, func(n string) string { return c.arn("batch", "compute-environment/"+n) })
	}
	queue := func(c *Call, name string) string {
		return orARN(name, func(n string) string { return c.arn("batch", "job-queue/"+n) })
	}
	tagged := func(c *Call, action, resource string, tags map[string]string, extra ...Request) []Request {
		out := []Request{{Action: action, Resource: resource, Context: requestTags(tags)}}
		if len(tags) > 0 {
			out = append(out, Request{Action: "batch:TagResource", Resource: resource, Context: requestTags(tags)})
		}
		return append(out, extra...)
	}
	m["CreateComputeEnvironment"] = mapping{
		facts: func(ctx context.Context, c *Call, l *Lookup) {
			if cr := input[*batch.CreateComputeEnvironmentInput](c).ComputeResources; cr != nil && cr.InstanceRole != nil {
				l.profileRoles(ctx, c, *cr.InstanceRole)
			}
		},
		requests: func(c *Call) []Request {
			in := input[*batch.CreateComputeEnvironmentInput](c)
			var pass []Request
			if r := aws.ToString(in.ServiceRole); r != "" {
				pass = append(pass, passRole(c, r, "batch.amazonaws.com"))
			}
			if cr := in.ComputeResources; cr != nil {
				if cr.InstanceRole != nil {
					pass = append(pass, passProfile(c, *cr.InstanceRole, "batch.amazonaws.com")...)
				}
				if r := aws.ToString(cr.SpotIamFleetRole); r != "" {
					pass = append(pass, passRole(c, r, "batch.amazonaws.com"))
				}
			}
			return tagged(c, "batch:CreateComputeEnvironment", ce(c, aws.ToString(in.ComputeEnvironmentName)), in.Tags, pass...)
		},
	}
	m["UpdateComputeEnvironment"] = mapping{requests: func(c *Call) []Request {
		in := input[*batch.UpdateComputeEnvironmentInput](c)
		out := []Request{{Action: "batch:UpdateComputeEnvironment", Resource: ce(c, aws.ToString(in.ComputeEnvironment))}}
		if r := aws.ToString(in.ServiceRole); r != "" {
			out = append(out, passRole(c, r, "batch.amazonaws.com"))
		}
		return out
	}}
	m["DeleteComputeEnvironment"] = simple(func(c *Call) []string {
		return []string{ce(c, aws.ToString(input[*batch.DeleteComputeEnvironmentInput](c).ComputeEnvironment))}
	})
	m["CreateJobQueue"] = mapping{requests: func(c *Call) []Request {
		in := input[*batch.CreateJobQueueInput](c)
		var ces []Request
		for _, o := range in.ComputeEnvironmentOrder {
			ces = append(ces, Request{Action: "batch:CreateJobQueue", Resource: ce(c, aws.ToString(o.ComputeEnvironment))})
		}
		return tagged(c, "batch:CreateJobQueue", queue(c, aws.ToString(in.JobQueueName)), in.Tags, ces...)
	}}
	m["UpdateJobQueue"] = mapping{requests: func(c *Call) []Request {
		in := input[*batch.UpdateJobQueueInput](c)
		out := []Request{{Action: "batch:UpdateJobQueue", Resource: queue(c, aws.ToString(in.JobQueue))}}
		for _, o := range in.ComputeEnvironmentOrder {
			out = append(out, Request{Action: "batch:UpdateJobQueue", Resource: ce(c, aws.ToString(o.ComputeEnvironment))})
		}
		return out
	}}
	m["DeleteJobQueue"] = simple(func(c *Call) []string {
		return []string{queue(c, aws.ToString(input[*batch.DeleteJobQueueInput](c).JobQueue))}
	})
	m["RegisterJobDefinition"] = mapping{requests: func(c *Call) []Request {
		in := input[*batch.RegisterJobDefinitionInput](c)
		name := aws.ToString(in.JobDefinitionName)
		ctx := requestTags(in.Tags)
		if ctx == nil {
			ctx = map[string]any{}
		}
		var pass []Request
		if cp := in.ContainerProperties; cp != nil {
			if img := aws.ToString(cp.Image); img != "" {
				ctx["batch:Image"] = img
			}
			if cp.Privileged != nil {
				ctx["batch:Privileged"] = boolString(*cp.Privileged)
			}
			if u := aws.ToString(cp.User); u != "" {
				ctx["batch:User"] = u
			}
			for _, r := range []*string{cp.JobRoleArn, cp.ExecutionRoleArn} {
				if aws.ToString(r) != "" {
					pass = append(pass, passRole(c, *r, "batch.amazonaws.com"))
				}
			}
		}
		out := []Request{{Action: "batch:RegisterJobDefinition", Resource: c.arn("batch", "job-definition/"+name), Context: ctx}}
		if len(in.Tags) > 0 {
			rev := "*"
			if o := output[*batch.RegisterJobDefinitionOutput](c); o != nil && o.Revision != nil {
				rev = itoa(int(*o.Revision))
			}
			out = append(out, Request{Action: "batch:TagResource", Resource: c.arn("batch", "job-definition/"+name+":"+rev), Context: requestTags(in.Tags)})
		}
		return append(out, pass...)
	}}
	m["DeregisterJobDefinition"] = simple(func(c *Call) []string {
		return []string{orARN(aws.ToString(input[*batch.DeregisterJobDefinitionInput](c).JobDefinition),
			func(n string) string { return c.arn("batch", "job-definition/"+n) })}
	})
	// SubmitJob authorizes the queue and the job definition revision the
	// job runs ("job-definition/name:revision", the latest ACTIVE one when
	// the request names none). AWS Batch user guide, "Resource: Restrict to
	// a job queue": "you must provide both job queue and job definition
	// resource types"; iam-data's required job type carries EKS conditions
	// only.
	m["SubmitJob"] = mapping{
		facts: func(ctx context.Context, c *Call, l *Lookup) {
			l.jobDefinitionRevision(ctx, c, aws.ToString(input[*batch.SubmitJobInput](c).JobDefinition))
		},
		requests: func(c *Call) []Request {
			in := input[*batch.SubmitJobInput](c)
			def := aws.ToString(in.JobDefinition)
			if r := c.Facts.IDs["job-definition:"+def]; r != "" {
				def = r
			}
			def = orARN(def, func(n string) string { return c.arn("batch", "job-definition/"+n) })
			out := []Request{
				{Action: "batch:SubmitJob", Resource: queue(c, aws.ToString(in.JobQueue)), Context: requestTags(in.Tags)},
				{Action: "batch:SubmitJob", Resource: def, Context: requestTags(in.Tags)},
			}
			if len(in.Tags) > 0 {
				out = append(out, Request{Action: "batch:TagResource", Resource: c.arn("batch", "job/*"), Context: requestTags(in.Tags)})
			}
			return out
		},
		waive: map[string][]string{"batch:SubmitJob": {"job"}},
	}
	job := func(id func(c *Call) string) mapping {
		return mapping{
			facts: func(ctx context.Context, c *Call, l *Lookup) { l.jobTags(ctx, c, id(c)) },
			requests: func(c *Call) []Request {
				arn := c.arn("batch", "job/"+id(c))
				return []Request{{Action: "batch:" + c.Operation, Resource: arn, Context: resourceTags(c, arn)}}
			},
		}
	}
	m["TerminateJob"] = job(func(c *Call) string { return aws.ToString(input[*batch.TerminateJobInput](c).JobId) })
	m["CancelJob"] = job(func(c *Call) string { return aws.ToString(input[*batch.CancelJobInput](c).JobId) })
	m["TagResource"] = mapping{requests: func(c *Call) []Request {
		in := input[*batch.TagResourceInput](c)
		return []Request{{Action: "batch:TagResource", Resource: aws.ToString(in.ResourceArn), Context: requestTags(in.Tags)}}
	}}
	m["ListTagsForResource"] = simple(func(c *Call) []string {
		return []string{aws.ToString(input[*batch.ListTagsForResourceInput](c).ResourceArn)}
	})
	return m
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func iamMappings() map[string]mapping {
	m := map[string]mapping{}
	// role is an action on an existing role; with the role's boundary
	// (iam:PermissionsBoundary) for the actions that take it.
	role := func(name func(c *Call) *string, boundary bool, extra func(c *Call) map[string]any) mapping {
		return mapping{
			facts: func(ctx context.Context, c *Call, l *Lookup) { l.role(ctx, c, name(c)) },
			requests: func(c *Call) []Request {
				arn := roleARN(c, aws.ToString(name(c)))
				ctx := map[string]any{}
				if b := c.Facts.Boundary[arn]; boundary && b != "" {
					ctx["iam:PermissionsBoundary"] = b
				}
				if extra != nil {
					ctx = merge(ctx, extra(c))
				}
				return []Request{{Action: "iam:" + c.Operation, Resource: arn, Context: ctx}}
			},
		}
	}
	profile := func(name func(c *Call) *string) mapping {
		return simple(func(c *Call) []string { return []string{profileARN(c, aws.ToString(name(c)))} })
	}
	m["GetRole"] = role(func(c *Call) *string { return input[*iam.GetRoleInput](c).RoleName }, false, nil)
	m["GetRolePolicy"] = role(func(c *Call) *string { return input[*iam.GetRolePolicyInput](c).RoleName }, false, nil)
	m["ListRolePolicies"] = role(func(c *Call) *string { return input[*iam.ListRolePoliciesInput](c).RoleName }, false, nil)
	m["ListAttachedRolePolicies"] = role(func(c *Call) *string { return input[*iam.ListAttachedRolePoliciesInput](c).RoleName }, false, nil)
	m["ListInstanceProfilesForRole"] = role(func(c *Call) *string { return input[*iam.ListInstanceProfilesForRoleInput](c).RoleName }, false, nil)
	m["DeleteRole"] = role(func(c *Call) *string { return input[*iam.DeleteRoleInput](c).RoleName }, false, nil)
	m["PutRolePolicy"] = role(func(c *Call) *string { return input[*iam.PutRolePolicyInput](c).RoleName }, true, nil)
	m["DeleteRolePolicy"] = role(func(c *Call) *string { return input[*iam.DeleteRolePolicyInput](c).RoleName }, true, nil)
	m["AttachRolePolicy"] = role(func(c *Call) *string { return input[*iam.AttachRolePolicyInput](c).RoleName }, true,
		func(c *Call) map[string]any {
			return map[string]any{"iam:PolicyARN": aws.ToString(input[*iam.AttachRolePolicyInput](c).PolicyArn)}
		})
	m["DetachRolePolicy"] = role(func(c *Call) *string { return input[*iam.DetachRolePolicyInput](c).RoleName }, true,
		func(c *Call) map[string]any {
			return map[string]any{"iam:PolicyARN": aws.ToString(input[*iam.DetachRolePolicyInput](c).PolicyArn)}
		})
	m["DeleteRolePermissionsBoundary"] = role(func(c *Call) *string { return input[*iam.DeleteRolePermissionsBoundaryInput](c).RoleName }, true, nil)
	m["PutRolePermissionsBoundary"] = role(func(c *Call) *string { return input[*iam.PutRolePermissionsBoundaryInput](c).RoleName }, false,
		func(c *Call) map[string]any {
			return map[string]any{"iam:PermissionsBoundary": aws.ToString(input[*iam.PutRolePermissionsBoundaryInput](c).PermissionsBoundary)}
		})
	m["TagRole"] = role(func(c *Call) *string { return input[*iam.TagRoleInput](c).RoleName }, false,
		func(c *Call) map[string]any { return requestTags(iamTags(input[*iam.TagRoleInput](c).Tags)) })
	m["CreateRole"] = mapping{requests: func(c *Call) []Request {
		in := input[*iam.CreateRoleInput](c)
		arn := c.globalARN("iam", "role"+path(in.Path)+aws.ToString(in.RoleName))
		ctx := merge(requestTags(iamTags(in.Tags)))
		if b := aws.ToString(in.PermissionsBoundary); b != "" {
			ctx["iam:PermissionsBoundary"] = b
		}
		out := []Request{{Action: "iam:CreateRole", Resource: arn, Context: ctx}}
		if len(in.Tags) > 0 {
			out = append(out, Request{Action: "iam:TagRole", Resource: arn, Context: requestTags(iamTags(in.Tags))})
		}
		return out
	}}
	m["CreateInstanceProfile"] = mapping{requests: func(c *Call) []Request {
		in := input[*iam.CreateInstanceProfileInput](c)
		arn := c.globalARN("iam", "instance-profile"+path(in.Path)+aws.ToString(in.InstanceProfileName))
		out := []Request{{Action: "iam:CreateInstanceProfile", Resource: arn, Context: requestTags(iamTags(in.Tags))}}
		if len(in.Tags) > 0 {
			out = append(out, Request{Action: "iam:TagInstanceProfile", Resource: arn, Context: requestTags(iamTags(in.Tags))})
		}
		return out
	}}
	m["TagInstanceProfile"] = mapping{requests: func(c *Call) []Request {
		in := input[*iam.TagInstanceProfileInput](c)
		return []Request{{Action: "iam:TagInstanceProfile", Resource: profileARN(c, aws.ToString(in.InstanceProfileName)), Context: requestTags(iamTags(in.Tags))}}
	}}
	m["GetInstanceProfile"] = profile(func(c *Call) *string { return input[*iam.GetInstanceProfileInput](c).InstanceProfileName })
	m["DeleteInstanceProfile"] = profile(func(c *Call) *string { return input[*iam.DeleteInstanceProfileInput](c).InstanceProfileName })
	m["RemoveRoleFromInstanceProfile"] = profile(func(c *Call) *string {
		return input[*iam.RemoveRoleFromInstanceProfileInput](c).InstanceProfileName
	})
	// Adding a role to a profile passes it (to EC2, which the profile is for).
	m["AddRoleToInstanceProfile"] = mapping{requests: func(c *Call) []Request {
		in := input[*iam.AddRoleToInstanceProfileInput](c)
		return []Request{
			{Action: "iam:AddRoleToInstanceProfile", Resource: profileARN(c, aws.ToString(in.InstanceProfileName))},
			passRole(c, aws.ToString(in.RoleName), "ec2.amazonaws.com"),
		}
	}}
	m["CreateServiceLinkedRole"] = mapping{requests: func(c *Call) []Request {
		svc := aws.ToString(input[*iam.CreateServiceLinkedRoleInput](c).AWSServiceName)
		return []Request{{Action: "iam:CreateServiceLinkedRole", Resource: c.globalARN("iam", "role/aws-service-role/"+svc+"/*"),
			Context: map[string]any{"iam:AWSServiceName": svc}}}
	}}
	m["ListRoles"] = wildcard
	m["ListInstanceProfiles"] = wildcard
	m["GetPolicy"] = simple(func(c *Call) []string { return []string{aws.ToString(input[*iam.GetPolicyInput](c).PolicyArn)} })
	m["GetPolicyVersion"] = simple(func(c *Call) []string { return []string{aws.ToString(input[*iam.GetPolicyVersionInput](c).PolicyArn)} })
	return m
}

func path(p *string) string {
	s := aws.ToString(p)
	if s == "" {
		return "/"
	}
	return s
}

func s3Mappings() map[string]mapping {
	bucket := func(b *string) string { return "arn:" + Partition + ":s3:::" + aws.ToString(b) }
	object := func(b, k *string) string { return bucket(b) + "/" + aws.ToString(k) }
	return map[string]mapping{
		"GetObject": simple(func(c *Call) []string {
			in := input[*s3.GetObjectInput](c)
			return []string{object(in.Bucket, in.Key)}
		}),
		// HEAD Object is authorized as s3:GetObject.
		"HeadObject": {requests: func(c *Call) []Request {
			in := input[*s3.HeadObjectInput](c)
			return []Request{{Action: "s3:GetObject", Resource: object(in.Bucket, in.Key)}}
		}},
		"PutObject": simple(func(c *Call) []string {
			in := input[*s3.PutObjectInput](c)
			return []string{object(in.Bucket, in.Key)}
		}),
		"DeleteObject": simple(func(c *Call) []string {
			in := input[*s3.DeleteObjectInput](c)
			return []string{object(in.Bucket, in.Key)}
		}),
		"GetBucketLocation": simple(func(c *Call) []string { return []string{bucket(input[*s3.GetBucketLocationInput](c).Bucket)} }),
		// ListObjects(V2) and HEAD Bucket are authorized as s3:ListBucket.
		"ListObjectsV2": {requests: func(c *Call) []Request {
			in := input[*s3.ListObjectsV2Input](c)
			ctx := map[string]any{}
			if p := aws.ToString(in.Prefix); p != "" {
				ctx["s3:prefix"] = p
			}
			return []Request{{Action: "s3:ListBucket", Resource: bucket(in.Bucket), Context: ctx}}
		}},
		"HeadBucket": {requests: func(c *Call) []Request {
			return []Request{{Action: "s3:ListBucket", Resource: bucket(input[*s3.HeadBucketInput](c).Bucket)}}
		}},
	}
}

// dynamoMappings: every item request carries dynamodb:LeadingKeys, the
// partition key values it reads or writes (a policy conditioned on it with
// ForAllValues holds for a request without the key: leaving it out would
// pass what AWS denies). The key attribute names come from the table's key
// schema (Facts), the values from the request.
func dynamoMappings() map[string]mapping {
	table := func(c *Call, name *string) string {
		return orARN(aws.ToString(name), func(n string) string { return c.arn("dynamodb", "table/"+n) })
	}
	schema := func(names func(c *Call) []string) func(ctx context.Context, c *Call, l *Lookup) {
		return func(ctx context.Context, c *Call, l *Lookup) {
			for _, n := range names(c) {
				l.tableKeys(ctx, c, n)
			}
		}
	}
	// item is one request of action on a table, with the partition key
	// values of items (by attribute map).
	item := func(c *Call, action string, name *string, items ...map[string]ddbtypes.AttributeValue) Request {
		return Request{Action: action, Resource: table(c, name), Context: leadingKeys(c, aws.ToString(name), "", items...)}
	}
	single := func(action string, name func(c *Call) *string, key func(c *Call) map[string]ddbtypes.AttributeValue) mapping {
		return mapping{
			facts: schema(func(c *Call) []string { return []string{aws.ToString(name(c))} }),
			requests: func(c *Call) []Request {
				return []Request{item(c, action, name(c), key(c))}
			},
		}
	}
	m := map[string]mapping{
		"GetItem": single("dynamodb:GetItem", func(c *Call) *string { return input[*dynamodb.GetItemInput](c).TableName },
			func(c *Call) map[string]ddbtypes.AttributeValue { return input[*dynamodb.GetItemInput](c).Key }),
		"PutItem": single("dynamodb:PutItem", func(c *Call) *string { return input[*dynamodb.PutItemInput](c).TableName },
			func(c *Call) map[string]ddbtypes.AttributeValue { return input[*dynamodb.PutItemInput](c).Item }),
		"UpdateItem": single("dynamodb:UpdateItem", func(c *Call) *string { return input[*dynamodb.UpdateItemInput](c).TableName },
			func(c *Call) map[string]ddbtypes.AttributeValue { return input[*dynamodb.UpdateItemInput](c).Key }),
		"DeleteItem": single("dynamodb:DeleteItem", func(c *Call) *string { return input[*dynamodb.DeleteItemInput](c).TableName },
			func(c *Call) map[string]ddbtypes.AttributeValue { return input[*dynamodb.DeleteItemInput](c).Key }),
		// A query reads one partition: the key condition's equality on the
		// table's (or the index's) partition key.
		"Query": {
			facts: schema(func(c *Call) []string { return []string{aws.ToString(input[*dynamodb.QueryInput](c).TableName)} }),
			requests: func(c *Call) []Request {
				in := input[*dynamodb.QueryInput](c)
				res := table(c, in.TableName)
				if ix := aws.ToString(in.IndexName); ix != "" {
					res += "/index/" + ix
				}
				var ctx map[string]any
				if v, ok := queryPartition(c, in); ok {
					ctx = map[string]any{"dynamodb:LeadingKeys": []string{v}}
				}
				return []Request{{Action: "dynamodb:Query", Resource: res, Context: ctx}}
			},
		},
		"Scan": simple(func(c *Call) []string { return []string{table(c, input[*dynamodb.ScanInput](c).TableName)} }),
		"BatchGetItem": {
			facts: schema(func(c *Call) []string { return sortedTables(input[*dynamodb.BatchGetItemInput](c).RequestItems) }),
			requests: func(c *Call) []Request {
				in := input[*dynamodb.BatchGetItemInput](c)
				var out []Request
				for _, name := range sortedTables(in.RequestItems) {
					out = append(out, item(c, "dynamodb:BatchGetItem", aws.String(name), in.RequestItems[name].Keys...))
				}
				return out
			},
		},
		"BatchWriteItem": {
			facts: schema(func(c *Call) []string { return sortedTables(input[*dynamodb.BatchWriteItemInput](c).RequestItems) }),
			requests: func(c *Call) []Request {
				in := input[*dynamodb.BatchWriteItemInput](c)
				var out []Request
				for _, name := range sortedTables(in.RequestItems) {
					var items []map[string]ddbtypes.AttributeValue
					for _, w := range in.RequestItems[name] {
						switch {
						case w.PutRequest != nil:
							items = append(items, w.PutRequest.Item)
						case w.DeleteRequest != nil:
							items = append(items, w.DeleteRequest.Key)
						}
					}
					out = append(out, item(c, "dynamodb:BatchWriteItem", aws.String(name), items...))
				}
				return out
			},
		},
	}
	// The parts of a transaction are authorized as their single-item actions.
	m["TransactWriteItems"] = mapping{
		facts: schema(func(c *Call) []string {
			var names []string
			for _, it := range input[*dynamodb.TransactWriteItemsInput](c).TransactItems {
				switch {
				case it.Put != nil:
					names = append(names, aws.ToString(it.Put.TableName))
				case it.Update != nil:
					names = append(names, aws.ToString(it.Update.TableName))
				case it.Delete != nil:
					names = append(names, aws.ToString(it.Delete.TableName))
				case it.ConditionCheck != nil:
					names = append(names, aws.ToString(it.ConditionCheck.TableName))
				}
			}
			return names
		}),
		requests: func(c *Call) []Request {
			var out []Request
			for _, it := range input[*dynamodb.TransactWriteItemsInput](c).TransactItems {
				switch {
				case it.Put != nil:
					out = append(out, item(c, "dynamodb:PutItem", it.Put.TableName, it.Put.Item))
				case it.Update != nil:
					out = append(out, item(c, "dynamodb:UpdateItem", it.Update.TableName, it.Update.Key))
				case it.Delete != nil:
					out = append(out, item(c, "dynamodb:DeleteItem", it.Delete.TableName, it.Delete.Key))
				case it.ConditionCheck != nil:
					out = append(out, item(c, "dynamodb:ConditionCheckItem", it.ConditionCheck.TableName, it.ConditionCheck.Key))
				}
			}
			return out
		},
	}
	m["TransactGetItems"] = mapping{
		facts: schema(func(c *Call) []string {
			var names []string
			for _, it := range input[*dynamodb.TransactGetItemsInput](c).TransactItems {
				if it.Get != nil {
					names = append(names, aws.ToString(it.Get.TableName))
				}
			}
			return names
		}),
		requests: func(c *Call) []Request {
			var out []Request
			for _, it := range input[*dynamodb.TransactGetItemsInput](c).TransactItems {
				if it.Get != nil {
					out = append(out, item(c, "dynamodb:GetItem", it.Get.TableName, it.Get.Key))
				}
			}
			return out
		},
	}
	return m
}

func sortedTables[V any](items map[string]V) []string {
	out := make([]string, 0, len(items))
	for n := range items {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// leadingKeys is the dynamodb:LeadingKeys context of items of table (or
// its index): their distinct partition key values, sorted; nil when the
// key schema is unknown.
func leadingKeys(c *Call, table, index string, items ...map[string]ddbtypes.AttributeValue) map[string]any {
	pk := c.Facts.IDs["table-key:"+table+"/"+index]
	if pk == "" {
		return nil
	}
	set := map[string]bool{}
	for _, it := range items {
		if v, ok := attrString(it[pk]); ok {
			set[v] = true
		}
	}
	if len(set) == 0 {
		return nil
	}
	return map[string]any{"dynamodb:LeadingKeys": sortedKeys(set)}
}

var andRE = regexp.MustCompile(`(?i)\s+and\s+`)

// queryPartition is the partition key value a query's key condition names
// (an equality on the table's or the index's partition key).
func queryPartition(c *Call, in *dynamodb.QueryInput) (string, bool) {
	pk := c.Facts.IDs["table-key:"+aws.ToString(in.TableName)+"/"+aws.ToString(in.IndexName)]
	if pk == "" || in.KeyConditionExpression == nil {
		return "", false
	}
	for _, clause := range andRE.Split(*in.KeyConditionExpression, -1) {
		lhs, rhs, ok := strings.Cut(clause, "=")
		if !ok {
			continue
		}
		name, val := strings.Trim(strings.TrimSpace(lhs), "()"), strings.Trim(strings.TrimSpace(rhs), "()")
		if strings.HasPrefix(name, "#") {
			name = in.ExpressionAttributeNames[name]
		}
		if name == pk {
			return attrString(in.ExpressionAttributeValues[val])
		}
	}
	return "", false
}

func attrString(v ddbtypes.AttributeValue) (string, bool) {
	switch x := v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return x.Value, true
	case *ddbtypes.AttributeValueMemberN:
		return x.Value, true
	}
	return "", false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func logsMappings() map[string]mapping {
	group := func(c *Call, name, identifier *string) string {
		if id := aws.ToString(identifier); id != "" {
			return strings.TrimSuffix(orARN(id, func(n string) string { return c.arn("logs", "log-group:"+n) }), ":*")
		}
		return c.arn("logs", "log-group:"+aws.ToString(name))
	}
	return map[string]mapping{
		"DescribeLogGroups": wildcard,
		"CreateLogGroup": {requests: func(c *Call) []Request {
			in := input[*cloudwatchlogs.CreateLogGroupInput](c)
			arn := group(c, in.LogGroupName, nil)
			out := []Request{{Action: "logs:CreateLogGroup", Resource: arn, Context: requestTags(in.Tags)}}
			if len(in.Tags) > 0 {
				out = append(out, Request{Action: "logs:TagResource", Resource: arn, Context: requestTags(in.Tags)})
			}
			return out
		}},
		"PutRetentionPolicy": simple(func(c *Call) []string {
			return []string{group(c, input[*cloudwatchlogs.PutRetentionPolicyInput](c).LogGroupName, nil)}
		}),
		"DeleteLogGroup": simple(func(c *Call) []string {
			return []string{group(c, input[*cloudwatchlogs.DeleteLogGroupInput](c).LogGroupName, nil)}
		}),
		"DescribeLogStreams": simple(func(c *Call) []string {
			in := input[*cloudwatchlogs.DescribeLogStreamsInput](c)
			return []string{group(c, in.LogGroupName, in.LogGroupIdentifier)}
		}),
		"FilterLogEvents": simple(func(c *Call) []string {
			in := input[*cloudwatchlogs.FilterLogEventsInput](c)
			return []string{group(c, in.LogGroupName, in.LogGroupIdentifier)}
		}),
		"GetLogEvents": simple(func(c *Call) []string {
			in := input[*cloudwatchlogs.GetLogEventsInput](c)
			return []string{group(c, in.LogGroupName, in.LogGroupIdentifier) + ":log-stream:" + aws.ToString(in.LogStreamName)}
		}),
		"StartLiveTail": simple(func(c *Call) []string {
			var out []string
			for _, g := range input[*cloudwatchlogs.StartLiveTailInput](c).LogGroupIdentifiers {
				out = append(out, group(c, nil, aws.String(g)))
			}
			return out
		}),
		"ListTagsForResource": simple(func(c *Call) []string {
			return []string{group(c, nil, input[*cloudwatchlogs.ListTagsForResourceInput](c).ResourceArn)}
		}),
		"TagResource": {requests: func(c *Call) []Request {
			in := input[*cloudwatchlogs.TagResourceInput](c)
			return []Request{{Action: "logs:TagResource", Resource: group(c, nil, in.ResourceArn), Context: requestTags(in.Tags)}}
		}},
	}
}

func ssmMappings() map[string]mapping {
	// AWS shows public parameters (/aws/service/…) without an account;
	// iam-simulate needs one, and the caller's matches any policy that
	// allows either form (…:*:parameter/aws/service/*).
	param := func(c *Call, name string) string {
		return c.arn("ssm", "parameter/"+strings.TrimPrefix(name, "/"))
	}
	return map[string]mapping{
		"GetParameter": simple(func(c *Call) []string { return []string{param(c, aws.ToString(input[*ssm.GetParameterInput](c).Name))} }),
		"GetParameters": simple(func(c *Call) []string {
			var out []string
			for _, n := range input[*ssm.GetParametersInput](c).Names {
				out = append(out, param(c, n))
			}
			return out
		}),
	}
}

func stsMappings() map[string]mapping {
	return map[string]mapping{
		"AssumeRole": {requests: func(c *Call) []Request {
			in := input[*sts.AssumeRoleInput](c)
			ctx := map[string]any{}
			if e := aws.ToString(in.ExternalId); e != "" {
				ctx["sts:ExternalId"] = e
			}
			if s := aws.ToString(in.RoleSessionName); s != "" {
				ctx["sts:RoleSessionName"] = s
			}
			out := []Request{{Action: "sts:AssumeRole", Resource: aws.ToString(in.RoleArn), Context: ctx}}
			if len(in.Tags) > 0 {
				out = append(out, Request{Action: "sts:TagSession", Resource: aws.ToString(in.RoleArn)})
			}
			return out
		}},
		// Any identity may ask who it is: no authorization.
		"GetCallerIdentity": {requests: func(*Call) []Request { return nil }},
	}
}

func lambdaMappings() map[string]mapping {
	return map[string]mapping{
		"Invoke": {requests: func(c *Call) []Request {
			fn := orARN(aws.ToString(input[*lambda.InvokeInput](c).FunctionName), func(n string) string { return c.arn("lambda", "function:"+n) })
			return []Request{{Action: "lambda:InvokeFunction", Resource: fn}}
		}},
	}
}

func efsMappings() map[string]mapping {
	fsARN := func(c *Call, id string) string { return c.arn("elasticfilesystem", "file-system/"+id) }
	owned := func(id func(c *Call) string) mapping {
		return mapping{
			facts: func(ctx context.Context, c *Call, l *Lookup) { l.efsTags(ctx, c, id(c)) },
			requests: func(c *Call) []Request {
				arn := fsARN(c, id(c))
				return []Request{{Action: "elasticfilesystem:" + c.Operation, Resource: arn, Context: resourceTags(c, arn)}}
			},
		}
	}
	m := map[string]mapping{
		// Without an id, the request is for every file system.
		"DescribeFileSystems": simple(func(c *Call) []string {
			id := aws.ToString(input[*efs.DescribeFileSystemsInput](c).FileSystemId)
			if id == "" {
				id = "*"
			}
			return []string{fsARN(c, id)}
		}),
		"DescribeMountTargets": simple(func(c *Call) []string {
			id := aws.ToString(input[*efs.DescribeMountTargetsInput](c).FileSystemId)
			if id == "" {
				id = "*"
			}
			return []string{fsARN(c, id)}
		}),
		"CreateFileSystem": {requests: func(c *Call) []Request {
			in := input[*efs.CreateFileSystemInput](c)
			tags := map[string]string{}
			for _, t := range in.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			ctx := merge(requestTags(tags))
			if in.Encrypted != nil {
				ctx["elasticfilesystem:Encrypted"] = boolString(*in.Encrypted)
			}
			out := []Request{{Action: "elasticfilesystem:CreateFileSystem", Resource: "*", Context: ctx}}
			if len(tags) > 0 {
				out = append(out, Request{Action: "elasticfilesystem:TagResource", Resource: c.arn("elasticfilesystem", "file-system/*"), Context: requestTags(tags)})
			}
			return out
		}},
		"DeleteFileSystem": owned(func(c *Call) string { return aws.ToString(input[*efs.DeleteFileSystemInput](c).FileSystemId) }),
		"PutLifecycleConfiguration": owned(func(c *Call) string {
			return aws.ToString(input[*efs.PutLifecycleConfigurationInput](c).FileSystemId)
		}),
	}
	// A mount target is a network interface EFS creates (and deletes) in
	// the caller's name: the EC2 actions are the caller's too, made by EFS
	// with the caller's credentials (a forward access session:
	// aws:ViaAWSService is true).
	m["CreateMountTarget"] = mapping{
		facts: func(ctx context.Context, c *Call, l *Lookup) {
			l.efsTags(ctx, c, aws.ToString(input[*efs.CreateMountTargetInput](c).FileSystemId))
		},
		requests: func(c *Call) []Request {
			in := input[*efs.CreateMountTargetInput](c)
			arn := fsARN(c, aws.ToString(in.FileSystemId))
			out := []Request{
				{Action: "elasticfilesystem:CreateMountTarget", Resource: arn, Context: resourceTags(c, arn)},
				{Action: "ec2:CreateNetworkInterface", Resource: c.arn("ec2", "network-interface/*"), Context: viaService()},
				{Action: "ec2:CreateNetworkInterface", Resource: ec2ARN(c, aws.ToString(in.SubnetId)), Context: viaService()},
				{Action: "ec2:DescribeSubnets", Resource: "*", Context: viaService()},
				{Action: "ec2:DescribeNetworkInterfaces", Resource: "*", Context: viaService()},
			}
			for _, g := range in.SecurityGroups {
				out = append(out, Request{Action: "ec2:CreateNetworkInterface", Resource: ec2ARN(c, g), Context: viaService()})
			}
			return out
		},
	}
	m["DeleteMountTarget"] = mapping{
		facts: func(ctx context.Context, c *Call, l *Lookup) {
			l.mountTarget(ctx, c, aws.ToString(input[*efs.DeleteMountTargetInput](c).MountTargetId))
		},
		requests: func(c *Call) []Request {
			id := aws.ToString(input[*efs.DeleteMountTargetInput](c).MountTargetId)
			fs := c.Facts.IDs["mount-target:"+id]
			if fs == "" {
				fs = "fs-unknown"
			}
			arn := fsARN(c, fs)
			return []Request{
				{Action: "elasticfilesystem:DeleteMountTarget", Resource: arn, Context: resourceTags(c, arn)},
				{Action: "ec2:DeleteNetworkInterface", Resource: c.arn("ec2", "network-interface/*"), Context: viaService()},
			}
		},
	}
	return m
}

func fsxMappings() map[string]mapping {
	return map[string]mapping{
		"DescribeFileSystems": wildcard,
		// FSx creates the file system's network interfaces with the
		// caller's permissions (a forward access session).
		"CreateFileSystem": {requests: func(c *Call) []Request {
			in := input[*fsx.CreateFileSystemInput](c)
			tags := map[string]string{}
			for _, t := range in.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			arn := c.arn("fsx", "file-system/*")
			out := []Request{{Action: "fsx:CreateFileSystem", Resource: arn, Context: requestTags(tags)}}
			if len(tags) > 0 {
				out = append(out, Request{Action: "fsx:TagResource", Resource: arn, Context: requestTags(tags)})
			}
			out = append(out, Request{Action: "ec2:CreateNetworkInterface", Resource: c.arn("ec2", "network-interface/*"), Context: viaService()})
			for _, s := range in.SubnetIds {
				out = append(out, Request{Action: "ec2:CreateNetworkInterface", Resource: ec2ARN(c, s), Context: viaService()})
			}
			for _, g := range in.SecurityGroupIds {
				out = append(out, Request{Action: "ec2:CreateNetworkInterface", Resource: ec2ARN(c, g), Context: viaService()})
			}
			return out
		}},
		"DeleteFileSystem": {
			facts: func(ctx context.Context, c *Call, l *Lookup) {
				l.fsxTags(ctx, c, aws.ToString(input[*fsx.DeleteFileSystemInput](c).FileSystemId))
			},
			requests: func(c *Call) []Request {
				arn := c.arn("fsx", "file-system/"+aws.ToString(input[*fsx.DeleteFileSystemInput](c).FileSystemId))
				return []Request{{Action: "fsx:DeleteFileSystem", Resource: arn, Context: resourceTags(c, arn)}}
			},
		},
	}
}

// secretsMappings: a secret is named by name or ARN; its ARN (the name and
// six random characters) and tags are read before the call (Facts).
func secretsMappings() map[string]mapping {
	// existing is an action on an existing secret, with its tags.
	existing := func(id func(c *Call) *string, extra func(c *Call) map[string]any) mapping {
		return mapping{
			facts: func(ctx context.Context, c *Call, l *Lookup) { l.secret(ctx, c, aws.ToString(id(c))) },
			requests: func(c *Call) []Request {
				arn := secretARN(c, aws.ToString(id(c)))
				ctx := resourceTags(c, arn)
				if extra != nil {
					ctx = merge(ctx, extra(c))
				}
				return []Request{{Action: "secretsmanager:" + c.Operation, Resource: arn, Context: ctx}}
			},
		}
	}
	smTags := func(tags []smtypes.Tag) map[string]string {
		out := map[string]string{}
		for _, t := range tags {
			out[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		return out
	}
	return map[string]mapping{
		"GetSecretValue":    existing(func(c *Call) *string { return input[*secretsmanager.GetSecretValueInput](c).SecretId }, nil),
		"DescribeSecret":    existing(func(c *Call) *string { return input[*secretsmanager.DescribeSecretInput](c).SecretId }, nil),
		"PutSecretValue":    existing(func(c *Call) *string { return input[*secretsmanager.PutSecretValueInput](c).SecretId }, nil),
		"UpdateSecret":      existing(func(c *Call) *string { return input[*secretsmanager.UpdateSecretInput](c).SecretId }, nil),
		"DeleteSecret":      existing(func(c *Call) *string { return input[*secretsmanager.DeleteSecretInput](c).SecretId }, nil),
		"RestoreSecret":     existing(func(c *Call) *string { return input[*secretsmanager.RestoreSecretInput](c).SecretId }, nil),
		"PutResourcePolicy": existing(func(c *Call) *string { return input[*secretsmanager.PutResourcePolicyInput](c).SecretId }, nil),
		"TagResource": existing(func(c *Call) *string { return input[*secretsmanager.TagResourceInput](c).SecretId },
			func(c *Call) map[string]any {
				return requestTags(smTags(input[*secretsmanager.TagResourceInput](c).Tags))
			}),
		"UntagResource": existing(func(c *Call) *string { return input[*secretsmanager.UntagResourceInput](c).SecretId },
			func(c *Call) map[string]any {
				keys := append([]string{}, input[*secretsmanager.UntagResourceInput](c).TagKeys...)
				sort.Strings(keys)
				return map[string]any{"aws:TagKeys": keys}
			}),
		"ListSecrets": wildcard,
		// A new secret's ARN is the name and six characters Secrets Manager
		// chooses: the output's, or a stand-in when the call failed. Tags
		// given at creation need secretsmanager:TagResource too.
		"CreateSecret": {requests: func(c *Call) []Request {
			in := input[*secretsmanager.CreateSecretInput](c)
			arn := c.arn("secretsmanager", "secret:"+aws.ToString(in.Name)+"-AbCdEf")
			if o := output[*secretsmanager.CreateSecretOutput](c); o != nil && aws.ToString(o.ARN) != "" {
				arn = aws.ToString(o.ARN)
			}
			tags := smTags(in.Tags)
			ctx := merge(requestTags(tags), map[string]any{"secretsmanager:Name": aws.ToString(in.Name)})
			out := []Request{{Action: "secretsmanager:CreateSecret", Resource: arn, Context: ctx}}
			if len(tags) > 0 {
				out = append(out, Request{Action: "secretsmanager:TagResource", Resource: arn, Context: requestTags(tags)})
			}
			return out
		}},
	}
}

// secretARN is a secret's ARN: id when it is one, else the ARN the facts
// resolved the name to (a stand-in with the name when there is none).
func secretARN(c *Call, id string) string {
	if strings.HasPrefix(id, "arn:") {
		return id
	}
	if arn := c.Facts.IDs["secret:"+id]; arn != "" {
		return arn
	}
	return c.arn("secretsmanager", "secret:"+id+"-AbCdEf")
}

// ecsMappings: container instances by ARN, in their cluster (ecs:cluster).
func ecsMappings() map[string]mapping {
	return map[string]mapping{
		"DescribeContainerInstances": {requests: func(c *Call) []Request {
			in := input[*ecs.DescribeContainerInstancesInput](c)
			cluster := orARN(aws.ToString(in.Cluster), func(n string) string { return c.arn("ecs", "cluster/"+n) })
			var out []Request
			for _, ci := range in.ContainerInstances {
				arn := orARN(ci, func(id string) string {
					return c.arn("ecs", "container-instance/"+strings.TrimPrefix(cluster, c.arn("ecs", "cluster/"))+"/"+id)
				})
				out = append(out, Request{Action: "ecs:DescribeContainerInstances", Resource: arn, Context: map[string]any{"ecs:cluster": cluster}})
			}
			return out
		}},
	}
}
