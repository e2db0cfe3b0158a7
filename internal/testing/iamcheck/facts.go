package iamcheck

import (
	"context"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Facts is the state of the resources a call acts on, as the emulator
// holds it just before the call: what IAM evaluates that the call's input
// does not carry.
type Facts struct {
	// Tags by resource ARN (aws:ResourceTag/…).
	Tags map[string]map[string]string
	// Boundary by role ARN: the role's permissions boundary
	// (iam:PermissionsBoundary of calls that change an existing role).
	Boundary map[string]string
	// ProfileRoles by instance profile name or ARN: the roles a call that
	// names the profile passes (iam:PassRole).
	ProfileRoles map[string][]string
	// IDs resolves names to ids (launch template name -> id, mount target
	// -> file system).
	IDs map[string]string
	// Groups are the security groups EC2 gives an instance launched
	// without any (its VPC's default group).
	Groups []string
}

func (f *Facts) tag(arn string, tags map[string]string) {
	if f.Tags == nil {
		f.Tags = map[string]map[string]string{}
	}
	f.Tags[arn] = tags
}

func (f *Facts) id(name, id string) {
	if f.IDs == nil {
		f.IDs = map[string]string{}
	}
	f.IDs[name] = id
}

// Lookup reads facts from the emulator with the test's own (unrecorded)
// clients. A failed lookup leaves the fact out: the request then lacks the
// key, as AWS would see a resource without it.
type Lookup struct {
	cfg func(region string) aws.Config

	mu      sync.Mutex
	clients map[string]any
	// keys caches tables' partition key attributes by
	// "account/region/table/index" ("" index: the table's own).
	keys map[string]string
}

// NewLookup reads through cfg (the test environment's factory, pointed
// straight at the emulator).
func NewLookup(cfg func(region string) aws.Config) *Lookup {
	return &Lookup{cfg: cfg, clients: map[string]any{}}
}

// client returns the lookup's client of kind in the call's region and
// account: the emulator keeps one backend per account and serves another
// account's through the x-moto-account-id header (calls acting through a
// role in another account act on that account's resources).
func client[T any](l *Lookup, kind string, c *Call, build func(aws.Config) T) T {
	l.mu.Lock()
	defer l.mu.Unlock()
	region, account := c.Region, c.Account()
	if kind == "iam" {
		region = ""
	}
	key := kind + "/" + region + "/" + account
	if v, ok := l.clients[key]; ok {
		return v.(T)
	}
	cfg := l.cfg(region)
	if account != Account {
		cfg = cfg.Copy()
		cfg.APIOptions = append(cfg.APIOptions, smithyhttp.AddHeaderValue("x-moto-account-id", account))
	}
	v := build(cfg)
	l.clients[key] = v
	return v
}

func (l *Lookup) ec2(c *Call) *ec2.Client {
	return client(l, "ec2", c, func(c aws.Config) *ec2.Client { return ec2.NewFromConfig(c) })
}
func (l *Lookup) iam(c *Call) *iam.Client {
	return client(l, "iam", c, func(c aws.Config) *iam.Client { return iam.NewFromConfig(c) })
}
func (l *Lookup) batch(c *Call) *batch.Client {
	return client(l, "batch", c, func(c aws.Config) *batch.Client { return batch.NewFromConfig(c) })
}
func (l *Lookup) efs(c *Call) *efs.Client {
	return client(l, "efs", c, func(c aws.Config) *efs.Client { return efs.NewFromConfig(c) })
}
func (l *Lookup) dynamodb(c *Call) *dynamodb.Client {
	return client(l, "dynamodb", c, func(c aws.Config) *dynamodb.Client { return dynamodb.NewFromConfig(c) })
}
func (l *Lookup) secrets(c *Call) *secretsmanager.Client {
	return client(l, "secretsmanager", c, func(c aws.Config) *secretsmanager.Client { return secretsmanager.NewFromConfig(c) })
}
func (l *Lookup) fsx(c *Call) *fsx.Client {
	return client(l, "fsx", c, func(c aws.Config) *fsx.Client { return fsx.NewFromConfig(c) })
}

// ec2Tags records the tags of EC2 resources by id.
func (l *Lookup) ec2Tags(ctx context.Context, c *Call, ids []string) {
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		c.Facts.tag(ec2ARN(c, id), map[string]string{})
	}
	out, err := l.ec2(c).DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{{Name: aws.String("resource-id"), Values: ids}}})
	if err != nil {
		return
	}
	for _, t := range out.Tags {
		c.Facts.Tags[ec2ARN(c, aws.ToString(t.ResourceId))][aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
}

// launchTemplate resolves a launch template given by name or id, with its tags.
func (l *Lookup) launchTemplate(ctx context.Context, c *Call, id, name *string) {
	in := &ec2.DescribeLaunchTemplatesInput{}
	if id != nil {
		in.LaunchTemplateIds = []string{*id}
	} else if name != nil {
		in.LaunchTemplateNames = []string{*name}
	} else {
		return
	}
	out, err := l.ec2(c).DescribeLaunchTemplates(ctx, in)
	if err != nil || len(out.LaunchTemplates) == 0 {
		return
	}
	lt := out.LaunchTemplates[0]
	c.Facts.id("launch-template:"+aws.ToString(lt.LaunchTemplateName), aws.ToString(lt.LaunchTemplateId))
	tags := map[string]string{}
	for _, t := range lt.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	c.Facts.tag(ec2ARN(c, aws.ToString(lt.LaunchTemplateId)), tags)
}

// role records a role's tags and permissions boundary.
func (l *Lookup) role(ctx context.Context, c *Call, name *string) {
	if name == nil {
		return
	}
	out, err := l.iam(c).GetRole(ctx, &iam.GetRoleInput{RoleName: name})
	if err != nil {
		return
	}
	arn := roleARN(c, *name)
	tags := map[string]string{}
	for _, t := range out.Role.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	c.Facts.tag(arn, tags)
	if b := out.Role.PermissionsBoundary; b != nil && b.PermissionsBoundaryArn != nil {
		if c.Facts.Boundary == nil {
			c.Facts.Boundary = map[string]string{}
		}
		c.Facts.Boundary[arn] = *b.PermissionsBoundaryArn
	}
}

// profileRoles records the roles of an instance profile given by name or ARN.
func (l *Lookup) profileRoles(ctx context.Context, c *Call, nameOrARN string) {
	if nameOrARN == "" {
		return
	}
	name := nameOrARN
	if i := strings.LastIndex(name, "/"); strings.HasPrefix(name, "arn:") && i >= 0 {
		name = name[i+1:]
	}
	out, err := l.iam(c).GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
	if err != nil {
		return
	}
	if c.Facts.ProfileRoles == nil {
		c.Facts.ProfileRoles = map[string][]string{}
	}
	for _, r := range out.InstanceProfile.Roles {
		c.Facts.ProfileRoles[nameOrARN] = append(c.Facts.ProfileRoles[nameOrARN], aws.ToString(r.Arn))
	}
}

// jobTags records the tags of a Batch job: DescribeJobs answers them
// (the emulator's IAM enforcement refuses ListTagsForResource, even to an
// administrator); ListTagsForResource where the emulator's DescribeJobs
// answer does not decode (a Fargate job's vCPUs as "1.0").
func (l *Lookup) jobTags(ctx context.Context, c *Call, id string) {
	arn := c.arn("batch", "job/"+id)
	c.Facts.tag(arn, map[string]string{})
	out, err := l.batch(c).DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{id}})
	if err == nil {
		if len(out.Jobs) > 0 {
			c.Facts.tag(arn, out.Jobs[0].Tags)
		}
		return
	}
	tags, err := l.batch(c).ListTagsForResource(ctx, &batch.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	if err == nil {
		c.Facts.tag(arn, tags.Tags)
	}
}

// efsTags records an EFS file system's tags.
func (l *Lookup) efsTags(ctx context.Context, c *Call, id string) {
	arn := c.arn("elasticfilesystem", "file-system/"+id)
	c.Facts.tag(arn, map[string]string{})
	out, err := l.efs(c).DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{FileSystemId: aws.String(id)})
	if err != nil || len(out.FileSystems) == 0 {
		return
	}
	for _, t := range out.FileSystems[0].Tags {
		c.Facts.Tags[arn][aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
}

// mountTarget resolves a mount target to its file system, with its tags.
func (l *Lookup) mountTarget(ctx context.Context, c *Call, id string) {
	out, err := l.efs(c).DescribeMountTargets(ctx, &efs.DescribeMountTargetsInput{MountTargetId: aws.String(id)})
	if err != nil || len(out.MountTargets) == 0 {
		return
	}
	fs := aws.ToString(out.MountTargets[0].FileSystemId)
	c.Facts.id("mount-target:"+id, fs)
	l.efsTags(ctx, c, fs)
}

// fsxTags records an FSx file system's tags.
func (l *Lookup) fsxTags(ctx context.Context, c *Call, id string) {
	arn := c.arn("fsx", "file-system/"+id)
	c.Facts.tag(arn, map[string]string{})
	out, err := l.fsx(c).DescribeFileSystems(ctx, &fsx.DescribeFileSystemsInput{FileSystemIds: []string{id}})
	if err != nil || len(out.FileSystems) == 0 {
		return
	}
	for _, t := range out.FileSystems[0].Tags {
		c.Facts.Tags[arn][aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
}

// defaultGroups records the default security group of the VPC of subnet
// (the default VPC when subnet is ""): what EC2 gives an instance launched
// without security groups, and authorizes.
func (l *Lookup) defaultGroups(ctx context.Context, c *Call, subnet string) {
	api := l.ec2(c)
	var vpc string
	if subnet != "" {
		out, err := api.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{subnet}})
		if err != nil || len(out.Subnets) == 0 {
			return
		}
		vpc = aws.ToString(out.Subnets[0].VpcId)
	} else {
		out, err := api.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
		if err != nil || len(out.Vpcs) == 0 {
			return
		}
		vpc = aws.ToString(out.Vpcs[0].VpcId)
	}
	out, err := api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{vpc}}, {Name: aws.String("group-name"), Values: []string{"default"}},
	}})
	if err != nil {
		return
	}
	for _, g := range out.SecurityGroups {
		c.Facts.Groups = append(c.Facts.Groups, aws.ToString(g.GroupId))
	}
}

// jobDefinitionRevision resolves a job definition named without a revision
// to its latest ACTIVE revision ("name:revision"): what SubmitJob
// authorizes.
func (l *Lookup) jobDefinitionRevision(ctx context.Context, c *Call, def string) {
	if def == "" || strings.Contains(def, ":") {
		return
	}
	out, err := l.batch(c).DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(def), Status: aws.String("ACTIVE")})
	if err != nil {
		return
	}
	latest := int32(0)
	for _, d := range out.JobDefinitions {
		if r := aws.ToInt32(d.Revision); r > latest {
			latest = r
		}
	}
	if latest > 0 {
		c.Facts.id("job-definition:"+def, def+":"+itoa(int(latest)))
	}
}

// secret resolves a secret given by name or ARN to its ARN, with its tags.
func (l *Lookup) secret(ctx context.Context, c *Call, id string) {
	if id == "" {
		return
	}
	out, err := l.secrets(c).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		return
	}
	arn := aws.ToString(out.ARN)
	if !strings.HasPrefix(id, "arn:") {
		c.Facts.id("secret:"+id, arn)
	}
	tags := map[string]string{}
	for _, t := range out.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	c.Facts.tag(id, tags)
	c.Facts.tag(arn, tags)
}

// tableKeys records the partition key attribute of a table and of each of
// its global secondary indexes (IDs "table-key:<table>/<index>"), read once
// per table.
func (l *Lookup) tableKeys(ctx context.Context, c *Call, table string) {
	if table == "" {
		return
	}
	prefix := c.Account() + "/" + c.Region + "/" + table + "/"
	l.mu.Lock()
	known := l.keys != nil && l.keys[prefix] != ""
	l.mu.Unlock()
	if !known {
		out, err := l.dynamodb(c).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return
		}
		hash := func(ks []ddbtypes.KeySchemaElement) string {
			for _, k := range ks {
				if k.KeyType == ddbtypes.KeyTypeHash {
					return aws.ToString(k.AttributeName)
				}
			}
			return ""
		}
		l.mu.Lock()
		if l.keys == nil {
			l.keys = map[string]string{}
		}
		l.keys[prefix] = hash(out.Table.KeySchema)
		for _, ix := range out.Table.GlobalSecondaryIndexes {
			l.keys[prefix+aws.ToString(ix.IndexName)] = hash(ix.KeySchema)
		}
		for _, ix := range out.Table.LocalSecondaryIndexes {
			l.keys[prefix+aws.ToString(ix.IndexName)] = hash(ix.KeySchema)
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range l.keys {
		if index, ok := strings.CutPrefix(k, prefix); ok {
			c.Facts.id("table-key:"+table+"/"+index, v)
		}
	}
}
