package rolecheck

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAllowedBy(t *testing.T) {
	doc := func(t *testing.T, text string) document {
		d, err := parseDocument(text)
		require.NoError(t, err)
		return d
	}
	allowEC2 := `{"Statement":{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}}`
	for _, tc := range []struct {
		name   string
		docs   []string
		action string
		want   bool
	}{
		{"wildcard action, one statement object", []string{allowEC2}, "ec2:DescribeSubnets", true},
		{"case-insensitive", []string{allowEC2}, "EC2:describesubnets", true},
		{"no match", []string{allowEC2}, "ec2:RunInstances", false},
		{"? wildcard", []string{`{"Statement":[{"Effect":"Allow","Action":["s3:GetObjec?"],"Resource":"*"}]}`}, "s3:GetObject", true},
		{"scoped and conditioned grants count", []string{`{"Statement":[{"Effect":"Allow","Action":"iam:CreateRole","Resource":"arn:aws:iam::*:role/ceforge-*","Condition":{"StringEquals":{"iam:PermissionsBoundary":"x"}}}]}`}, "iam:CreateRole", true},
		{"NotAction allow", []string{`{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}`}, "batch:SubmitJob", true},
		{"NotAction excludes", []string{`{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}`}, "iam:PassRole", false},
		{"unconditional deny wins", []string{allowEC2, `{"Statement":[{"Effect":"Deny","Action":"ec2:DescribeSubnets","Resource":"*"}]}`}, "ec2:DescribeSubnets", false},
		{"a scoped deny leaves the grant", []string{allowEC2, `{"Statement":[{"Effect":"Deny","Action":"ec2:DescribeSubnets","Resource":"arn:aws:ec2:*:*:subnet/x"}]}`}, "ec2:DescribeSubnets", true},
		{"a conditioned deny leaves the grant", []string{allowEC2, `{"Statement":[{"Effect":"Deny","Action":"ec2:*","Resource":"*","Condition":{"StringNotEquals":{"aws:RequestedRegion":"eu-west-1"}}}]}`}, "ec2:DescribeSubnets", true},
		{"URL-encoded, as IAM returns it", []string{url.QueryEscape(allowEC2)}, "ec2:DescribeImages", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var docs []document
			for _, d := range tc.docs {
				docs = append(docs, doc(t, d))
			}
			require.Equal(t, tc.want, allowedBy(docs, tc.action))
		})
	}
	// A boundary must allow the action too.
	p := rolePolicies{identity: []document{doc(t, allowEC2)}, boundary: []document{doc(t, `{"Statement":[{"Effect":"Allow","Action":"ec2:DescribeImages","Resource":"*"}]}`)}}
	require.True(t, p.allow("ec2:DescribeImages"))
	require.False(t, p.allow("ec2:DescribeSubnets"), "outside the boundary")
	_, err := parseDocument("not json")
	require.Error(t, err)
}
