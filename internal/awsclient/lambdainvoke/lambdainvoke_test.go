package lambdainvoke_test

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/awsclient/lambdainvoke"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestInvoke(t *testing.T) {
	env := testenv.New(t)
	cfg := env.AWS.Config(testenv.Region)
	ctx := context.Background()

	err := lambdainvoke.Func(cfg, "ceforge-missing")(ctx, []byte(`{}`))
	require.ErrorContains(t, err, "invoke ceforge-missing")

	role, err := iam.NewFromConfig(cfg).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("ceforge-fn"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	require.NoError(t, err)
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, err := zw.Create("bootstrap")
	require.NoError(t, err)
	_, err = w.Write([]byte("#!/bin/sh\n"))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	_, err = lambda.NewFromConfig(cfg).CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("ceforge-reconciler"), Role: role.Role.Arn, Runtime: types.RuntimeProvidedal2023,
		Handler: aws.String("bootstrap"), Code: &types.FunctionCode{ZipFile: zipped.Bytes()},
	})
	require.NoError(t, err)
	require.NoError(t, lambdainvoke.Func(cfg, "ceforge-reconciler")(ctx, []byte(`{"computeEnvId":"abc"}`)))
	require.Equal(t, 1, env.Calls.Count("Lambda.Invoke")-1, "one call per invoke (the first one failed)")
}
