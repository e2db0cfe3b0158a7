package shellstub

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Environment of a test binary re-executed as the `aws` command.
const (
	envEndpoint = "SHELLSTUB_AWS_ENDPOINT"
	envRegion   = "SHELLSTUB_AWS_REGION"
)

// AWSCLI installs an `aws` command that performs `aws s3 cp LOCAL s3://…`
// and `aws secretsmanager get-secret-value --secret-id NAME --query
// SecretString|SecretBinary --output text` (a blob as base64) for real, through the AWS SDK against the
// emulator at endpoint: the
// stub re-executes the test binary, whose TestMain must call FakeAWSCLI
// first. Any other subcommand fails.
func (s *Sandbox) AWSCLI(endpoint, region string) {
	s.t.Helper()
	self, err := os.Executable()
	if err != nil {
		s.t.Fatal(err)
	}
	s.Stub("aws", envEndpoint+"="+shellQuote(endpoint)+" "+envRegion+"="+shellQuote(region)+" exec "+shellQuote(self)+` "$@"`)
}

// FakeAWSCLI runs the `aws` command when this process is a stub's
// re-execution (see AWSCLI) and reports it with the exit code; TestMain
// then exits with that code instead of running tests.
func FakeAWSCLI() (bool, int) {
	endpoint := os.Getenv(envEndpoint)
	if endpoint == "" {
		return false, 0
	}
	run := s3Copy
	if len(os.Args) > 1 && os.Args[1] == "secretsmanager" {
		run = getSecret
	}
	if err := run(endpoint, os.Getenv(envRegion), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "aws (test double):", err)
		return true, 1
	}
	return true, 0
}

func s3Copy(endpoint, region string, args []string) error {
	if len(args) < 2 || args[0] != "s3" || args[1] != "cp" {
		return fmt.Errorf("only `aws s3 cp` is implemented, got %q", args)
	}
	var pos []string
	for i := 2; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--region":
			i++
			if i < len(args) {
				region = args[i]
			}
		case strings.HasPrefix(a, "--"):
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 || !strings.HasPrefix(pos[1], "s3://") {
		return fmt.Errorf("want `aws s3 cp LOCAL s3://bucket/key`, got %q", args)
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(pos[1], "s3://"), "/")
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	body, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	if region == "" {
		region = "us-east-1"
	}
	client := s3.New(s3.Options{
		Region: region, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	_, err = client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(string(body))})
	return err
}

// getSecret prints a secret's string as `aws secretsmanager
// get-secret-value --secret-id NAME --query SecretString --output text`.
func getSecret(endpoint, region string, args []string) error {
	var id, query, output string
	for i := 1; i < len(args); i++ {
		if i+1 >= len(args) {
			break
		}
		switch args[i] {
		case "--secret-id":
			id, i = args[i+1], i+1
		case "--region":
			region, i = args[i+1], i+1
		case "--query":
			query, i = args[i+1], i+1
		case "--output":
			output, i = args[i+1], i+1
		}
	}
	if args[1] != "get-secret-value" || id == "" || (query != "SecretString" && query != "SecretBinary") || output != "text" {
		return fmt.Errorf("want `aws secretsmanager get-secret-value --secret-id NAME --query SecretString|SecretBinary --output text`, got %q", args)
	}
	if region == "" {
		region = "us-east-1"
	}
	client := secretsmanager.New(secretsmanager.Options{
		Region: region, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	out, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return err
	}
	if query == "SecretBinary" {
		// The AWS CLI prints a blob as base64.
		if out.SecretBinary == nil {
			return fmt.Errorf("%s holds no SecretBinary", id)
		}
		fmt.Println(base64.StdEncoding.EncodeToString(out.SecretBinary))
		return nil
	}
	fmt.Println(aws.ToString(out.SecretString))
	return nil
}
