package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/spf13/cobra"
)

// PluginName is the Session Manager plugin the AWS CLI runs for sessions.
const PluginName = "session-manager-plugin"

// portForwardDocument is the SSM document of port forwarding sessions.
const portForwardDocument = "AWS-StartPortForwardingSession"

func (a *app) studioCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "studio",
		Short: "Open running studios",
		Example: `  RUN=$(ceforge run launch --ce CE_ID --studio jupyter/base-notebook:2024-10-07 -q)
  ceforge run watch $RUN &    # until RUNNING
  ceforge studio connect $RUN # then open http://localhost:8888`,
	}
	cmd.AddCommand(a.studioConnect())
	return cmd
}

// studioCommandLine is the plain AWS CLI command that opens the same tunnel.
func studioCommandLine(c connect, localPort int) string {
	return fmt.Sprintf(`aws ssm start-session --region %s --target %s --document-name %s --parameters '{"portNumber":["%d"],"localPortNumber":["%d"]}'`,
		c.Region, c.InstanceID, nonEmpty(c.Document, portForwardDocument), c.Port, localPort)
}

func (a *app) studioConnect() *cobra.Command {
	var localPort int
	var printOnly bool
	cmd := &cobra.Command{
		Use:   "connect RUN_ID",
		Short: "Forward a local port to a running studio through SSM Session Manager",
		Long: `Open a tunnel from a local port to a running studio with Session Manager
port forwarding: the studio's host needs no inbound rule and no public
address. It needs the Session Manager plugin installed locally and, for
your AWS identity, ssm:StartSession on the instance and the
AWS-StartPortForwardingSession document (and ssm:TerminateSession on your
own sessions). The equivalent AWS CLI command is printed first; --print
prints only it.`,
		Example: `  ceforge studio connect RUN_ID                   # then open http://localhost:8888
  ceforge studio connect RUN_ID --local-port 9000
  ceforge studio connect RUN_ID --print          # the aws ssm start-session command`,
		Args: oneArg("run id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, r, _, err := a.getRun(cmd, args[0])
			if err != nil {
				return err
			}
			switch {
			case r.Kind != "studio":
				return usagef("run %s is a %s, not a studio", r.ID, r.Kind)
			case runEnded(r.Status):
				return outcomeError{fmt.Sprintf("studio %s has ended (%s)", r.ID, r.Status)}
			case (r.Connect == nil || r.Connect.InstanceID == "") && r.Status == "RUNNING":
				// AWS Batch: the host is known once Batch reports where the job runs.
				return outcomeError{fmt.Sprintf("studio %s is RUNNING but its host is not known yet; try again in a few seconds", r.ID)}
			case r.Connect == nil || r.Connect.InstanceID == "":
				return outcomeError{fmt.Sprintf("studio %s is %s and not reachable yet: wait until it is RUNNING (ceforge run watch %s)", r.ID, r.Status, r.ID)}
			}
			conn := *r.Connect
			if localPort == 0 {
				localPort = conn.Port
			}
			line := studioCommandLine(conn, localPort)
			if printOnly {
				fmt.Fprintln(a.io.Out, line)
				return nil
			}
			fmt.Fprintf(a.io.Err, "Forwarding localhost:%d to studio %s (port %d on %s). The same with the AWS CLI:\n  %s\n", localPort, r.ID, conn.Port, conn.InstanceID, line)
			plugin, err := exec.LookPath(PluginName)
			if err != nil {
				return fmt.Errorf("%s is not installed: install the Session Manager plugin for the AWS CLI (see the AWS Systems Manager user guide), or run the command above", PluginName)
			}
			return a.startSession(cmd.Context(), c, plugin, conn, localPort)
		},
	}
	cmd.Flags().IntVar(&localPort, "local-port", 0, "local port (default: the studio's port)")
	cmd.Flags().BoolVar(&printOnly, "print", false, "print the aws ssm start-session command and exit")
	return cmd
}

// startSession starts the port-forwarding session and hands it to the
// Session Manager plugin, exactly as the AWS CLI does: the plugin gets the
// StartSession answer, the region, the operation, the profile, the request
// and the endpoint, and keeps the tunnel open until interrupted.
func (a *app) startSession(ctx context.Context, c *Client, plugin string, conn connect, localPort int) error {
	profile := a.awsProfile()
	cfg, err := loadAWS(ctx, profile, conn.Region)
	if err != nil {
		return err
	}
	in := &ssm.StartSessionInput{
		Target:       aws.String(conn.InstanceID),
		DocumentName: aws.String(nonEmpty(conn.Document, portForwardDocument)),
		Parameters:   map[string][]string{"portNumber": {strconv.Itoa(conn.Port)}, "localPortNumber": {strconv.Itoa(localPort)}},
	}
	client := ssm.NewFromConfig(cfg)
	out, err := client.StartSession(ctx, in)
	if err != nil {
		return fmt.Errorf("start the Session Manager session to %s: %w", conn.InstanceID, err)
	}
	session, _ := json.Marshal(map[string]string{
		"SessionId": aws.ToString(out.SessionId), "TokenValue": aws.ToString(out.TokenValue), "StreamUrl": aws.ToString(out.StreamUrl),
	})
	request, _ := json.Marshal(map[string]any{"Target": conn.InstanceID, "DocumentName": aws.ToString(in.DocumentName), "Parameters": in.Parameters})
	endpoint := "https://ssm." + conn.Region + ".amazonaws.com"
	if ep := a.io.Getenv("AWS_ENDPOINT_URL_SSM"); ep != "" {
		endpoint = ep
	} else if ep := a.io.Getenv("AWS_ENDPOINT_URL"); ep != "" {
		endpoint = ep
	}
	// The plugin handles Ctrl-C itself; ceforge waits for it to finish.
	signal.Ignore(os.Interrupt)
	defer signal.Reset(os.Interrupt)
	p := exec.Command(plugin, string(session), conn.Region, "StartSession", profile, string(request), endpoint)
	p.Stdin, p.Stdout, p.Stderr = a.io.In, a.io.Out, a.io.Err
	runErr := p.Run()
	// The session ends with the plugin; make sure AWS knows.
	_, _ = client.TerminateSession(context.WithoutCancel(ctx), &ssm.TerminateSessionInput{SessionId: out.SessionId})
	var exit *exec.ExitError
	if errors.As(runErr, &exit) {
		return fmt.Errorf("%s exited with code %d", PluginName, exit.ExitCode())
	}
	return runErr
}

// awsProfile is the AWS profile of the selected ceforge profile ("" for the default chain).
func (a *app) awsProfile() string {
	path, err := configPath(a.io.Getenv)
	if err != nil {
		return ""
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return ""
	}
	return cfg.Profiles[a.profileName()].AWSProfile
}
