package awsclient

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"
)

func TestCredentialsFor(t *testing.T) {
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token"}
	cases := []struct {
		name    string
		opts    Options
		env     map[string]string
		wantID  string
		wantTok string
		wantErr string
	}{
		{name: "static wins over the environment", opts: Options{StaticCredentials: &aws.Credentials{AccessKeyID: "AKIDSTATIC", SecretAccessKey: "s"}}, env: env, wantID: "AKIDSTATIC"},
		{name: "execution role keys from the environment", env: env, wantID: "AKIDENV", wantTok: "token"},
		{name: "emulator without keys", opts: Options{Endpoint: "http://127.0.0.1:4566"}, wantID: "local"},
		{name: "emulator keeps keys it is given", opts: Options{Endpoint: "http://127.0.0.1:4566"}, env: env, wantID: "AKIDENV", wantTok: "token"},
		{name: "half a key pair is no credentials", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKID"}, wantErr: "no credentials"},
		{name: "nothing at all", wantErr: "no credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := credentialsFor(tc.opts, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			c, err := p.Retrieve(context.Background())
			require.NoError(t, err)
			require.Equal(t, tc.wantID, c.AccessKeyID)
			require.Equal(t, tc.wantTok, c.SessionToken)
		})
	}
}

func TestNewNeedsARegion(t *testing.T) {
	_, err := New(context.Background(), Options{Endpoint: "http://127.0.0.1:4566"})
	require.ErrorContains(t, err, "no region")

	f, err := New(context.Background(), Options{Region: "eu-west-1", Endpoint: "http://127.0.0.1:4566"})
	require.NoError(t, err)
	cfg := f.Config("")
	require.Equal(t, "eu-west-1", cfg.Region)
	require.Equal(t, "http://127.0.0.1:4566", aws.ToString(cfg.BaseEndpoint))
	require.Equal(t, "us-west-2", f.Config("us-west-2").Region)
}
