package forgedrole

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTrustPolicyOnlyComputeServices(t *testing.T) {
	for _, svc := range Principals {
		doc, err := TrustPolicy(svc)
		require.NoError(t, err)
		var p struct {
			Statement []struct {
				Effect    string
				Principal map[string]string
				Action    string
			}
		}
		require.NoError(t, json.Unmarshal([]byte(doc), &p))
		require.Len(t, p.Statement, 1)
		require.Equal(t, map[string]string{"Service": svc}, p.Statement[0].Principal)
		require.Equal(t, "sts:AssumeRole", p.Statement[0].Action)
	}
	for _, bad := range []string{"lambda.amazonaws.com", "", "*", "arn:aws:iam::123456789012:root", "ec2.amazonaws.com\"}", "EC2.amazonaws.com"} {
		_, err := TrustPolicy(bad)
		require.Error(t, err, bad)
	}
}

func TestAttachable(t *testing.T) {
	for _, p := range AttachablePolicies {
		require.True(t, Attachable(ManagedPolicyARN(p)), p)
		require.True(t, Attachable("arn:aws-us-gov:iam::aws:policy/"+p), p)
	}
	for _, bad := range []string{
		"arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/IAMFullAccess",
		"arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole", "arn:aws:iam::123456789012:policy/AmazonSSMManagedInstanceCore",
		"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore/x", "AmazonSSMManagedInstanceCore", "",
	} {
		require.False(t, Attachable(bad), bad)
	}
}

func TestBoundaryIn(t *testing.T) {
	b := "arn:aws:iam::123456789012:policy/ceforge-boundary"
	require.Equal(t, b, BoundaryIn(b, ""))
	require.Equal(t, "arn:aws:iam::210987654321:policy/ceforge-boundary", BoundaryIn(b, "arn:aws:iam::210987654321:role/ceforge-access"))
	require.Equal(t, b, BoundaryIn(b, "not-an-arn"))
	require.Equal(t, "ceforge-boundary", BoundaryName("ceforge-"))
}
