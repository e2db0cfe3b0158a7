package app

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ceforge/ceforge/internal/awsclient/ssmparam"
	"github.com/ceforge/ceforge/internal/cloudce"
	"github.com/ceforge/ceforge/internal/computeenv"
)

// The AWS Cloud platform: one IAM role + instance profile per CE, one EC2
// head instance per run, EC2 state-change and Spot events.
func init() {
	platforms = append(platforms, func(_ context.Context, a *App) error {
		p := cloudce.New(cloudce.Config{
			AWS: a.AWS, Runs: a.Runs, Prefix: a.Config.Prefix, LogGroup: a.Config.RunLogGroup,
			AllowedRegions: a.Config.AllowedRegions,
			Parameters:     func(cfg aws.Config) cloudce.ParameterReader { return ssmparam.New(cfg) },
			Log:            a.Log.With("platform", computeenv.PlatformCloud),
		})
		a.ComputeEnvs.Provisioners[computeenv.PlatformCloud] = p
		a.Runs.Launchers[computeenv.PlatformCloud] = p
		a.EC2Events.Handle(p, p.Parsers())
		return nil
	})
}
