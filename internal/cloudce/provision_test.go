package cloudce_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/cloudce"
	_ "github.com/ceforge/ceforge/internal/cloudce/cloudiam" // provisions AWS Cloud roles
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/testenv"
)

// newPlatform is the platform as function wires it, its calls IAM-checked
// as that function's.
func newPlatform(env *testenv.Env, function string) *cloudce.Platform {
	return cloudce.New(cloudce.Config{AWS: env.Function(function), Runs: &run.Service{Store: env.Store}, Prefix: "ceforge-", Boundary: testenv.Boundary("ceforge-")})
}

func creatingCE(id string) *computeenv.ComputeEnv {
	return &computeenv.ComputeEnv{
		ID: id, Platform: computeenv.PlatformCloud, Region: testenv.Region, WorkDir: "s3://ceforge-work/work",
		Status: computeenv.StatusCreating, Cloud: &computeenv.CloudOptions{},
	}
}

// A crash after part of the IAM setup: Advance resumes, and both create and
// teardown can be repeated and find nothing left to do.
func TestAdvanceResumesAndRepeats(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	p := newPlatform(env, app.FnReconciler)
	api := iam.NewFromConfig(env.AWS.Config(testenv.Region))
	ce := creatingCE("crash000000001")
	name := p.RoleName(ce.ID)

	// What a crashed first attempt left: the role and one policy; the profile without its role.
	_, err := api.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
	require.NoError(t, err)
	_, err = api.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(name), PolicyArn: aws.String(cloudce.ManagedPolicies[0])})
	require.NoError(t, err)
	_, err = api.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String(name)})
	require.NoError(t, err)

	require.NoError(t, p.Advance(ctx, ce))
	require.Equal(t, computeenv.StatusAvailable, ce.Status)
	ce.Status = computeenv.StatusCreating
	require.NoError(t, p.Advance(ctx, ce), "a repeated create is a no-op")
	require.Equal(t, computeenv.StatusAvailable, ce.Status)
	prof, err := api.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
	require.NoError(t, err)
	require.Len(t, prof.InstanceProfile.Roles, 1)
	attached, err := api.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
	require.NoError(t, err)
	require.Len(t, attached.AttachedPolicies, len(cloudce.ManagedPolicies))

	// A crash half-way through teardown: the profile is already gone.
	_, err = api.RemoveRoleFromInstanceProfile(ctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: aws.String(name), RoleName: aws.String(name)})
	require.NoError(t, err)
	_, err = api.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: aws.String(name)})
	require.NoError(t, err)
	ce.Status = computeenv.StatusDeleting
	require.NoError(t, p.Advance(ctx, ce))
	require.Equal(t, computeenv.StatusDeleted, ce.Status)
	_, err = api.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	require.ErrorContains(t, err, "NoSuchEntity")
	ce.Status = computeenv.StatusDeleting
	require.NoError(t, p.Advance(ctx, ce), "a repeated teardown finds everything gone")
	require.Equal(t, computeenv.StatusDeleted, ce.Status)
	for _, r := range ce.ForgedResources {
		require.Equal(t, cloudce.StateGone, r.State, r.Type)
	}
}

// deniedIAM fails CreateRole as an account without the permission would.
type deniedIAM struct{ cloudce.IAMAPI }

func (deniedIAM) CreateRole(context.Context, *iam.CreateRoleInput, ...func(*iam.Options)) (*iam.CreateRoleOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform iam:CreateRole"}
}

// throttledIAM fails CreateRole transiently.
type throttledIAM struct{ cloudce.IAMAPI }

func (throttledIAM) CreateRole(context.Context, *iam.CreateRoleInput, ...func(*iam.Options)) (*iam.CreateRoleOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
}

func TestAdvanceErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		api        cloudce.IAMAPI
		boundary   string
		wantStatus string
		transient  bool
		reason     string
	}{
		{"permission denied ends in ERRORED with the reason", deniedIAM{}, testenv.Boundary("ceforge-"), computeenv.StatusErrored, false, "AccessDenied"},
		{"throttling stays CREATING for the reconciler", throttledIAM{}, testenv.Boundary("ceforge-"), computeenv.StatusCreating, true, ""},
		// No IAM call at all: IAM would refuse a role without the boundary anyway.
		{"no permissions boundary ends in ERRORED before any call", nil, "", computeenv.StatusErrored, false, "no permissions boundary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &cloudce.Platform{Boundary: tc.boundary, ClientsFor: func(*computeenv.ComputeEnv) cloudce.Clients { return cloudce.Clients{IAM: tc.api} }}
			ce := creatingCE("errors00000001")
			err := p.Advance(ctx, ce)
			require.Equal(t, tc.wantStatus, ce.Status)
			if tc.transient {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Contains(t, ce.StatusReason, tc.reason)
		})
	}
}

// capacityEC2 refuses the first subnet for capacity, then launches.
type capacityEC2 struct {
	cloudce.EC2API
	subnets []string
}

func (c *capacityEC2) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, opts ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	c.subnets = append(c.subnets, aws.ToString(in.SubnetId))
	if len(c.subnets) == 1 {
		return nil, &smithy.GenericAPIError{Code: "InsufficientInstanceCapacity", Message: "no capacity in this AZ"}
	}
	return c.EC2API.RunInstances(ctx, in, opts...)
}

type failingEC2 struct{ cloudce.EC2API }

func (failingEC2) RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	return nil, errors.New("boom")
}

func TestLaunchMovesToAnotherSubnetOnCapacityErrors(t *testing.T) {
	f := newFixture(t)
	ce := f.createCE(t, ceBody())
	p := newPlatform(f.Env, app.FnAPI)
	real := p.ClientsFor
	fake := &capacityEC2{}
	p.ClientsFor = func(c *computeenv.ComputeEnv) cloudce.Clients {
		cl := real(c)
		fake.EC2API = cl.EC2
		cl.EC2 = fake
		return cl
	}
	r := &run.Run{ID: "capacity000001", Kind: run.KindPipeline, RunName: "cap", Pipeline: "nf-core/demo", WorkDir: ce.WorkDir}
	b, logs, err := p.Launch(context.Background(), &ce, r)
	require.NoError(t, err)
	require.NotEmpty(t, b.InstanceID)
	require.Equal(t, r.ID, logs.Stream)
	require.Len(t, fake.subnets, 2)
	require.NotEqual(t, fake.subnets[0], fake.subnets[1])

	p.ClientsFor = func(c *computeenv.ComputeEnv) cloudce.Clients {
		cl := real(c)
		cl.EC2 = failingEC2{cl.EC2}
		return cl
	}
	_, _, err = p.Launch(context.Background(), &ce, r)
	require.ErrorContains(t, err, "boom")
}

func TestParsers(t *testing.T) {
	p := &cloudce.Platform{}
	parsers := p.Parsers()
	for _, tc := range []struct {
		name   string
		kind   eventsrc.Kind
		detail string
		want   any
	}{
		{"state change", cloudce.KindStateChange, `{"instance-id":"i-1","state":"running"}`, cloudce.StateChange{InstanceID: "i-1", State: "running"}},
		{"spot warning", cloudce.KindSpotWarning, `{"instance-id":"i-1","instance-action":"terminate"}`, cloudce.SpotWarning{InstanceID: "i-1", Action: "terminate"}},
		{"unknown state", cloudce.KindStateChange, `{"instance-id":"i-1","state":"exploded"}`, nil},
		{"no instance id", cloudce.KindStateChange, `{"state":"running"}`, nil},
		{"spot warning without instance", cloudce.KindSpotWarning, `{"instance-action":"terminate"}`, nil},
		{"not an object", cloudce.KindStateChange, `"running"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := parsers[tc.kind](eventsrc.Envelope{DetailType: tc.kind.DetailType, Detail: []byte(tc.detail)})
			if tc.want == nil {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, v)
		})
	}
}

func TestAllowedRegionsNarrowTheSupportedList(t *testing.T) {
	h := apptest.New(t, func(c *config.Config) { c.AllowedRegions = []string{"eu-west-1"} })
	res := h.Do(t, http.MethodPost, "/compute-envs", ceBody())
	require.Equal(t, http.StatusBadRequest, res.Status, string(res.Body))
	_, field, _ := res.Error(t)
	require.Equal(t, "region", field)
}
