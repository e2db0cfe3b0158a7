// Package cli is the ceforge command-line client: every API call signed
// with SigV4 from the standard AWS credential chain (service execute-api
// for the API, lambda for the log-follow Function URL), answers printed as
// tables, JSON or YAML, and errors as "field: message (code)".
//
// Exit codes: 0 success; 1 an API, AWS or network error; 2 a usage error
// (flags, arguments, configuration); 3 what a command waited for ended
// unsuccessfully (a watched run FAILED or was CANCELLED, a compute
// environment went ERRORED, a sweep FAILED).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitUsage   = 2
	ExitOutcome = 3
)

// Version is set at build time (-ldflags "-X .../internal/cli.Version=…").
var Version = "dev"

// usageError marks a mistake in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// outcomeError marks an awaited outcome that was not success.
type outcomeError struct{ msg string }

func (e outcomeError) Error() string { return e.msg }

// IO are the process's streams and environment.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	Getenv   func(string) string
	// IsTerminal reports whether Out is a terminal (live redraws, spinners).
	IsTerminal bool
}

// app is one invocation's state.
type app struct {
	io       IO
	profile  string
	endpoint string
	logsURL  string
	region   string
	output   string
	quiet    bool
	client   *Client
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	poll     time.Duration
}

// Main runs the CLI with args (without the program name) and returns the
// exit code.
func Main(ctx context.Context, args []string, io IO) int {
	if io.Getenv == nil {
		io.Getenv = os.Getenv
	}
	a := &app{io: io, now: time.Now, sleep: sleepCtx, poll: 2 * time.Second}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ue usageError
	var oe outcomeError
	switch {
	case errors.As(err, &oe):
		fmt.Fprintln(io.Err, "ceforge:", err)
		return ExitOutcome
	case errors.As(err, &ue) || isCobraUsage(err):
		fmt.Fprintln(io.Err, "ceforge:", err)
		fmt.Fprintln(io.Err, "Run 'ceforge --help' for usage.")
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitError
	}
	fmt.Fprintln(io.Err, "ceforge:", err)
	return ExitError
}

// isCobraUsage recognises cobra's own argument and command errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires exactly", "flag needs an argument", "invalid argument", "required flag"} {
		if strings.HasPrefix(s, p) || strings.Contains(s, " "+p) {
			return true
		}
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "ceforge",
		Short: "Run Nextflow pipelines and Studios on AWS through your ceforge deployment",
		Long: `ceforge is the command-line client of a ceforge deployment: compute
environments, runs, logs, sweeps and studios. Every request is signed with
SigV4 using the standard AWS credential chain (environment, shared config
and credentials files, SSO, instance and container roles).

Configure once with 'ceforge configure', then see the examples of each
command (ceforge ce --help, ceforge run --help).`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Example: `  ceforge configure --stack ceforge
  ceforge ce create -f ce.yaml --wait
  ceforge run launch --ce CE_ID --pipeline nf-core/rnaseq --revision 3.14.0 --watch
  ceforge logs -f RUN_ID`,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.profile, "profile", "", "ceforge profile (deployment) from the configuration file (env CEFORGE_PROFILE; default \"default\")")
	pf.StringVar(&a.endpoint, "endpoint", "", "API URL, overriding the profile's (env CEFORGE_ENDPOINT)")
	pf.StringVar(&a.logsURL, "logs-url", "", "log-follow URL, overriding the profile's")
	pf.StringVar(&a.region, "region", "", "region to sign requests for (default: from the endpoint, else the AWS configuration)")
	pf.StringVarP(&a.output, "output", "o", formatTable, "output format: table, json or yaml")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print ids only, one a line (for scripts)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch a.output {
		case formatTable, formatJSON, formatYAML:
		default:
			return usagef("--output must be table, json or yaml, not %q", a.output)
		}
		return nil
	}
	root.AddCommand(a.configureCommand(), a.ceCommand(), a.runCommand(), a.logsCommand(), a.sweepCommand(), a.studioCommand(), a.versionCommand())
	return root
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "Print the CLI's version", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.io.Out, "ceforge", Version)
			return nil
		},
	}
}

// Argument checks that report usage errors.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

func oneArg(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return usagef("missing %s", what)
		case len(args) > 1:
			return usagef("expected one %s, got %d arguments", what, len(args))
		}
		return nil
	}
}

func (a *app) printer() *printer {
	return &printer{out: a.io.Out, format: a.output, quiet: a.quiet, now: a.now}
}

func (a *app) profileName() string {
	if a.profile != "" {
		return a.profile
	}
	if p := a.io.Getenv("CEFORGE_PROFILE"); p != "" {
		return p
	}
	return DefaultProfile
}

// api returns the client of the selected deployment, configuring it on
// first use: profile from the configuration file, overridden by flags and
// CEFORGE_ENDPOINT; credentials and region from the AWS chain.
func (a *app) api(ctx context.Context) (*Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	path, err := configPath(a.io.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, usageError{err}
	}
	name := a.profileName()
	p, found := cfg.Profiles[name]
	if e := a.io.Getenv("CEFORGE_ENDPOINT"); e != "" {
		p.Endpoint = e
	}
	if a.endpoint != "" {
		p.Endpoint = a.endpoint
	}
	if a.logsURL != "" {
		p.LogsURL = a.logsURL
	}
	if a.region != "" {
		p.Region = a.region
	}
	if p.Endpoint == "" {
		if !found && name != DefaultProfile {
			return nil, usagef("profile %q is not in %s (profiles: %s); create it with 'ceforge configure --profile %s'", name, path, strings.Join(cfg.names(), ", "), name)
		}
		return nil, usagef("no API endpoint: run 'ceforge configure' (or pass --endpoint, or set CEFORGE_ENDPOINT)")
	}
	region := p.Region
	if region == "" {
		region = regionOf(p.Endpoint)
	}
	awsCfg, err := loadAWS(ctx, p.AWSProfile, region)
	if err != nil {
		return nil, err
	}
	if region == "" {
		region = awsCfg.Region
	}
	if region == "" {
		return nil, usagef("no region to sign requests for: set it with --region, in the profile, or AWS_REGION")
	}
	a.client = &Client{
		Endpoint: p.Endpoint, LogsURL: p.LogsURL, Region: region, Credentials: awsCfg.Credentials,
		HTTP: &http.Client{Timeout: 0}, UserAgent: "ceforge-cli/" + Version,
	}
	return a.client, nil
}
