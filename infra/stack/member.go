package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/forgedrole"
	"github.com/ceforge/ceforge/internal/member"
)

// MemberGroups are the permission groups the member role holds: what the
// control plane's functions do in a member account (internal/member.Groups
// names them validate, create, launch, delete, logs, sweep), as the same
// policies the control plane's own roles hold. Observe and Events are
// parts of Launch and Logs; Secrets (writing pipeline secrets) and Stop
// (ending runs, deleting ended runs' token secrets, which the reconciler
// does in the run's account) belong to launch; Assume stays with the
// control plane.
var MemberGroups = []string{GroupValidate, GroupCreateIdentity, GroupCreate, GroupDelete, GroupLaunch, GroupSecrets, GroupStop, GroupLogs, GroupSweep}

// MemberStack is what a member account deploys (the template is plain
// CloudFormation with parameters, no assets: one synthesized template for
// every account, deployable with `aws cloudformation deploy` or StackSets).
type MemberStack struct {
	awscdk.Stack
	Config Config
	// Role is the role ceforge assumes (<prefix>member); Boundary the
	// account's <prefix>boundary, under which the role forges roles.
	Role     awsiam.Role
	Boundary awsiam.ManagedPolicy
	Groups   map[string]awsiam.ManagedPolicy
	// EventsRole lets EventBridge put the account's events on the control
	// plane's bus; Rules forward them.
	EventsRole awsiam.Role
	Rules      []awsevents.Rule
	// Parameters of the template.
	ControlPlaneAccount, ControlPlaneRegion, ExternalID, EventsOnly awscdk.CfnParameter
}

// MemberStackName is the member stack of a deployment named stackName.
func MemberStackName(stackName string) string { return stackName + "-member" }

// NewMemberStack builds the member stack of the deployment cfg describes
// (the same prefix, buckets and regions as the control plane).
func NewMemberStack(scope constructs.Construct, id string, cfg Config) (*MemberStack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st := awscdk.NewStack(scope, jsii.String(id), &awscdk.StackProps{
		Description: jsii.String("ceforge member account: the role the control plane assumes (with the External ID ceforge generated) and the rules forwarding Batch and EC2 events to it"),
	})
	awscdk.Tags_Of(st).Add(jsii.String("ceforge:component"), jsii.String("member"), nil)
	m := &MemberStack{Stack: st, Config: cfg, Groups: map[string]awsiam.ManagedPolicy{}}
	m.ControlPlaneAccount = awscdk.NewCfnParameter(st, jsii.String("ControlPlaneAccount"), &awscdk.CfnParameterProps{
		Type: jsii.String("String"), AllowedPattern: jsii.String(`^[0-9]{12}$`),
		Description: jsii.String("The account of the ceforge control plane (its functions assume the member role)"),
	})
	m.ControlPlaneRegion = awscdk.NewCfnParameter(st, jsii.String("ControlPlaneRegion"), &awscdk.CfnParameterProps{
		Type: jsii.String("String"), AllowedPattern: jsii.String(`^[a-z]{2}(-[a-z]+)+-[0-9]$`),
		Description: jsii.String("The region of the ceforge control plane (its event bus receives this account's events)"),
	})
	m.ExternalID = awscdk.NewCfnParameter(st, jsii.String("ExternalId"), &awscdk.CfnParameterProps{
		Type: jsii.String("String"), AllowedPattern: jsii.String("^" + cfg.Prefix + "[0-9a-f]{40}$"),
		Description: jsii.String("The External ID ceforge generated for these credentials (POST /credentials answers it)"),
	})
	m.EventsOnly = awscdk.NewCfnParameter(st, jsii.String("EventsOnly"), &awscdk.CfnParameterProps{
		Type: jsii.String("String"), AllowedValues: jsii.Strings("false", "true"), Default: jsii.String("false"),
		Description: jsii.String("true in each further region of the account: only forward that region's events (the role is global)"),
	})
	withRole := awscdk.NewCfnCondition(st, jsii.String("WithRole"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionEquals(m.EventsOnly.ValueAsString(), jsii.String("false")),
	})
	conditional := func(c constructs.IConstruct) {
		c.Node().DefaultChild().(awscdk.CfnResource).CfnOptions().SetCondition(withRole)
	}

	p := newPermissions(cfg)
	bstmts, bsup := p.statements(p.boundaryPerms())
	m.Boundary = awsiam.NewManagedPolicy(st, jsii.String("Boundary"), &awsiam.ManagedPolicyProps{
		ManagedPolicyName: jsii.String(forgedrole.BoundaryName(cfg.Prefix)),
		Description:       jsii.String("ceforge permissions boundary: the most any role ceforge forges (" + cfg.Prefix + "*) in this account may ever do"),
		Statements:        &bstmts,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(m.Boundary, &bsup, jsii.Bool(false))
	conditional(m.Boundary)
	p.boundary = *m.Boundary.ManagedPolicyArn()

	perms := map[string][]perm{
		GroupValidate: p.validate(), GroupCreateIdentity: p.createIdentity(), GroupCreate: p.create(),
		GroupDelete: p.delete(), GroupLaunch: p.launch(), GroupSecrets: p.pipelineSecrets(), GroupStop: p.stop(), GroupLogs: p.logs(), GroupSweep: p.sweep(),
	}
	var attached []awsiam.IManagedPolicy
	for _, g := range MemberGroups {
		stmts, sup := p.statements(perms[g])
		mp := awsiam.NewManagedPolicy(st, jsii.String(g), &awsiam.ManagedPolicyProps{
			ManagedPolicyName: jsii.String(memberPolicyName(cfg.Prefix, g)),
			Description:       jsii.String("ceforge member role: " + g),
			Statements:        &stmts,
		})
		if len(sup) > 0 {
			cdknag.NagSuppressions_AddResourceSuppressions(mp, &sup, jsii.Bool(false))
		}
		conditional(mp)
		m.Groups[g] = mp
		attached = append(attached, mp)
	}

	roleName := member.RoleName(cfg.Prefix)
	trust := member.TrustPolicy(*awscdk.Aws_PARTITION(), *m.ControlPlaneAccount.ValueAsString(), cfg.Prefix, *m.ExternalID.ValueAsString())
	self := p.arn("iam", "", p.account, "role/"+roleName)
	ownPolicies := p.arn("iam", "", p.account, "policy/"+cfg.Prefix+"member-*")
	istmts, isup := p.statements([]perm{
		{
			sid:       "ReadOwnPolicies",
			why:       "The role's own managed policies (" + cfg.Prefix + "member-*) and AWS managed ones: credentials verification reads what the role holds.",
			actions:   member.SelfReadActions,
			resources: []string{self, ownPolicies, "arn:" + p.partition + ":iam::aws:policy/*"},
		},
		{
			// The create and delete groups reach roles named <prefix>*, this
			// one included: nothing ceforge does may change it.
			sid:  "NeverChangeThisRole",
			deny: true,
			actions: []string{
				"iam:DeleteRole", "iam:UpdateRole", "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
				"iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary",
				"iam:TagRole", "iam:UntagRole", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy",
			},
			resources: []string{self, ownPolicies},
		},
	})
	m.Role = awsiam.NewRole(st, jsii.String("Role"), &awsiam.RoleProps{
		RoleName:           jsii.String(roleName),
		Description:        jsii.String("ceforge member role: assumed by the control plane's functions with the External ID ceforge generated"),
		AssumedBy:          awsiam.NewAccountPrincipal(m.ControlPlaneAccount.ValueAsString()),
		ManagedPolicies:    &attached,
		InlinePolicies:     &map[string]awsiam.PolicyDocument{"verification": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &istmts})},
		MaxSessionDuration: awscdk.Duration_Hours(jsii.Number(1)),
	})
	// The exact trust policy of internal/member (the principal above is
	// replaced): the function roles by aws:PrincipalArn, the External ID.
	m.Role.Node().DefaultChild().(awsiam.CfnRole).AddPropertyOverride(jsii.String("AssumeRolePolicyDocument"), trust)
	if len(isup) > 0 {
		cdknag.NagSuppressions_AddResourceSuppressions(m.Role, &isup, jsii.Bool(true))
	}
	conditional(m.Role)

	// Forwarding: this region's Batch and EC2 events, as they are, to the
	// control plane's member bus (an event keeps its account and region).
	bus := awsevents.EventBus_FromEventBusArn(st, jsii.String("ControlPlaneBus"), awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":events:"), m.ControlPlaneRegion.ValueAsString(), jsii.String(":"),
		m.ControlPlaneAccount.ValueAsString(), jsii.String(":event-bus/" + member.EventBusName(cfg.Prefix)),
	}))
	m.EventsRole = awsiam.NewRole(st, jsii.String("EventsRole"), &awsiam.RoleProps{
		RoleName:    awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String(cfg.Prefix + "member-events-"), awscdk.Aws_REGION()}),
		Description: jsii.String("ceforge member account: EventBridge forwards this region's Batch and EC2 events to the control plane's bus"),
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil),
	})
	for i, r := range eventsrc.Rules {
		m.Rules = append(m.Rules, awsevents.NewRule(st, jsii.String(memberRuleIDs[i]), &awsevents.RuleProps{
			RuleName:     jsii.String(cfg.Prefix + "forward-" + r.Name),
			Description:  jsii.String("ceforge: forward " + r.Source + " events to the control plane"),
			EventPattern: &awsevents.EventPattern{Source: jsii.Strings(r.Source), DetailType: jsii.Strings(r.DetailTypes...)},
			Targets:      &[]awsevents.IRuleTarget{awseventstargets.NewEventBus(bus, &awseventstargets.EventBusProps{Role: m.EventsRole})},
		}))
	}

	out := func(id, desc string, value *string, cond awscdk.CfnCondition) {
		awscdk.NewCfnOutput(st, jsii.String(id), &awscdk.CfnOutputProps{Value: value, Description: jsii.String(desc), Condition: cond})
	}
	out("RoleArn", "Register this role with POST /credentials (roleArn), then POST /credentials/{id}/verify", m.Role.RoleArn(), withRole)
	return m, nil
}

var memberRuleIDs = []string{"ForwardBatchJobStateChange", "ForwardEc2InstanceEvents"}

// memberPolicyName names a member role's group policy (the role may read
// its own: <prefix>member-*).
func memberPolicyName(prefix, group string) string { return prefix + "member-" + group }
