package cli

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/spf13/cobra"
)

func (a *app) configureCommand() *cobra.Command {
	var stack, awsProfile string
	cmd := &cobra.Command{
		Use:   "configure",
		Short: "Save a deployment's endpoints in the configuration file",
		Long: `Save the API URL and the log-follow URL of a ceforge deployment under a
profile name in the configuration file ($CEFORGE_CONFIG, else
ceforge/config.yaml in your configuration directory, e.g. ~/.config).

With --stack, the URLs are read from the CloudFormation stack's outputs
(ApiUrl, LogsUrl) with your AWS credentials; otherwise pass --endpoint and
--logs-url. --aws-profile names the AWS profile whose credentials sign the
requests of this ceforge profile.`,
		Example: `  ceforge configure --stack ceforge --region eu-west-1
  ceforge configure --profile staging --stack ceforge-staging --aws-profile staging-admin
  ceforge configure --profile local --endpoint http://127.0.0.1:8080 --logs-url http://127.0.0.1:8081`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := configPath(a.io.Getenv)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(path)
			if err != nil {
				return usageError{err}
			}
			name := a.profileName()
			p := cfg.Profiles[name]
			if awsProfile != "" {
				p.AWSProfile = awsProfile
			}
			if a.region != "" {
				p.Region = a.region
			}
			switch {
			case stack != "" && a.endpoint != "":
				return usagef("give --stack or --endpoint, not both")
			case stack != "":
				api, logs, err := stackOutputs(cmd.Context(), stack, p.AWSProfile, p.Region)
				if err != nil {
					return err
				}
				// The signing region is read from the URLs' host names.
				p.Endpoint, p.LogsURL = api, logs
			case a.endpoint != "":
				p.Endpoint = a.endpoint
				if a.logsURL != "" {
					p.LogsURL = a.logsURL
				}
			default:
				return usagef("give --stack NAME (read the deployed stack's outputs) or --endpoint URL")
			}
			cfg.Profiles[name] = p
			if err := cfg.save(path); err != nil {
				return err
			}
			if a.quiet {
				return nil
			}
			fmt.Fprintf(a.io.Out, "profile %q saved in %s\n", name, path)
			kv(a.io.Out, "  API", p.Endpoint, "  logs URL", p.LogsURL, "  region", p.Region, "  AWS profile", p.AWSProfile)
			return nil
		},
	}
	cmd.Flags().StringVar(&stack, "stack", "", "CloudFormation stack to read the outputs of (usually ceforge)")
	cmd.Flags().StringVar(&awsProfile, "aws-profile", "", "AWS profile whose credentials sign this profile's requests")
	return cmd
}

// stackOutputs reads ApiUrl and LogsUrl from a deployed stack.
func stackOutputs(ctx context.Context, stack, awsProfile, region string) (api, logs string, err error) {
	cfg, err := loadAWS(ctx, awsProfile, region)
	if err != nil {
		return "", "", err
	}
	if cfg.Region == "" {
		return "", "", usagef("no region for the stack: pass --region or set AWS_REGION")
	}
	out, err := cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
	if err != nil {
		return "", "", fmt.Errorf("read the outputs of stack %s in %s: %w", stack, cfg.Region, err)
	}
	if len(out.Stacks) == 0 {
		return "", "", fmt.Errorf("stack %s not found in %s", stack, cfg.Region)
	}
	for _, o := range out.Stacks[0].Outputs {
		switch aws.ToString(o.OutputKey) {
		case "ApiUrl":
			api = aws.ToString(o.OutputValue)
		case "LogsUrl":
			logs = aws.ToString(o.OutputValue)
		}
	}
	if api == "" {
		return "", "", fmt.Errorf("stack %s has no ApiUrl output: is it a ceforge stack?", stack)
	}
	return api, logs, nil
}
