package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) runCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "run",
		Aliases: []string{"runs"},
		Short:   "Launch, follow, cancel and relaunch pipeline and studio runs",
		Example: `  RUN=$(ceforge run launch --ce CE_ID --pipeline nf-core/rnaseq --revision 3.14.0 --config-profiles test -q)
  ceforge run watch $RUN
  ceforge run progress $RUN
  ceforge run tasks $RUN --status FAILED
  ceforge run list --status RUNNING
  ceforge run cancel $RUN
  ceforge run relaunch $RUN --resume`,
	}
	cmd.AddCommand(a.runLaunch(), a.runList(), a.runGet(), a.runCancel(), a.runRelaunch(), a.runWatch(), a.runProgress(), a.runTasks())
	return cmd
}

// launchFlags are the flags of run launch, laid over -f FILE.
type launchFlags struct {
	file, ce, pipeline, revision, profiles, paramsFile, configFile, preRun, postRun string
	workDir, name, studioImage, idempotencyKey                                      string
	labels                                                                          []string
	headCpus, headMemory, port                                                      int
	maxCost                                                                         float64
	spot, watch, progress                                                           bool
}

func readText(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("read %s: %v", path, err)
	}
	return string(b), nil
}

// request builds the POST /runs body: -f FILE first, flags over it.
func (f *launchFlags) request(a *app, cmd *cobra.Command) (json.RawMessage, error) {
	req, err := f.fields(a, cmd)
	if err != nil {
		return nil, err
	}
	if f.studioImage != "" || cmd.Flags().Changed("port") || cmd.Flags().Changed("spot") {
		st, _ := req["studio"].(map[string]any)
		if st == nil {
			st = map[string]any{}
		}
		if f.studioImage != "" {
			st["image"] = f.studioImage
		}
		if cmd.Flags().Changed("port") {
			st["port"] = f.port
		}
		if cmd.Flags().Changed("spot") {
			st["spot"] = f.spot
		}
		req["studio"] = st
		req["kind"] = "studio"
	}
	if _, ok := req["kind"]; !ok {
		req["kind"] = "pipeline"
	}
	if req["computeEnvId"] == nil || req["computeEnvId"] == "" {
		return nil, usagef("--ce CE_ID is required (or computeEnvId in -f FILE)")
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, usagef("encode request: %v", err)
	}
	return b, nil
}

// fields are the request fields launch and relaunch share (LaunchRequest,
// RelaunchRequest): -f FILE first, flags over it.
func (f *launchFlags) fields(a *app, cmd *cobra.Command) (map[string]any, error) {
	req := map[string]any{}
	if f.file != "" {
		raw, err := a.readRequest(f.file)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, usagef("%s: %v", f.file, err)
		}
	}
	set := func(flag, field string, v any) {
		if cmd.Flags().Changed(flag) {
			req[field] = v
		}
	}
	set("ce", "computeEnvId", f.ce)
	set("pipeline", "pipeline", f.pipeline)
	set("revision", "revision", f.revision)
	set("work-dir", "workDir", f.workDir)
	set("name", "runName", f.name)
	set("head-cpus", "headJobCpus", f.headCpus)
	set("head-memory-mb", "headJobMemoryMb", f.headMemory)
	if cmd.Flags().Changed("config-profiles") {
		var ps []string
		for _, p := range strings.Split(f.profiles, ",") {
			if p = strings.TrimSpace(p); p != "" {
				ps = append(ps, p)
			}
		}
		req["configProfiles"] = ps
	}
	for flag, field := range map[string]string{"params-file": "paramsText", "config-file": "configText", "pre-run": "preRunScript", "post-run": "postRunScript"} {
		if !cmd.Flags().Changed(flag) {
			continue
		}
		path, _ := cmd.Flags().GetString(flag)
		text, err := readText(path)
		if err != nil {
			return nil, err
		}
		req[field] = text
	}
	if len(f.labels) > 0 {
		labels, _ := req["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		for _, l := range f.labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				return nil, usagef("--label %q: use KEY=VALUE", l)
			}
			labels[k] = v
		}
		req["labels"] = labels
	}
	if cmd.Flags().Changed("max-cost") {
		if f.maxCost <= 0 {
			return nil, usagef("--max-cost must be a positive number of US dollars")
		}
		req["maxCostUsd"] = f.maxCost
	}
	if cmd.Flags().Changed("progress") {
		req["traceEnabled"] = f.progress
	}
	return req, nil
}

// addShared adds the flags of the fields launch and relaunch share.
func (f *launchFlags) addShared(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "request body, JSON or YAML (\"-\": standard input)")
	fl.StringVar(&f.ce, "ce", "", "compute environment id")
	fl.StringVar(&f.pipeline, "pipeline", "", "pipeline: https:// repository URL or owner/name")
	fl.StringVar(&f.revision, "revision", "", "branch, tag or commit")
	fl.StringVar(&f.profiles, "config-profiles", "", "Nextflow config profiles, comma-separated")
	fl.StringVar(&f.paramsFile, "params-file", "", "pipeline parameters file (JSON or YAML)")
	fl.StringVar(&f.configFile, "config-file", "", "extra Nextflow configuration file")
	fl.StringVar(&f.preRun, "pre-run", "", "script run before Nextflow")
	fl.StringVar(&f.postRun, "post-run", "", "script run after Nextflow")
	fl.StringVar(&f.workDir, "work-dir", "", "work directory (default: the compute environment's)")
	fl.StringVar(&f.name, "name", "", "run name")
	fl.StringArrayVar(&f.labels, "label", nil, "label KEY=VALUE (repeatable); tags the run's resources")
	fl.IntVar(&f.headCpus, "head-cpus", 0, "head job vCPUs (AWS Batch)")
	fl.IntVar(&f.headMemory, "head-memory-mb", 0, "head job memory in MiB (AWS Batch)")
	fl.Float64Var(&f.maxCost, "max-cost", 0, "cancel the run when its cost passes this many US dollars")
	fl.BoolVar(&f.progress, "progress", true, "Nextflow reports progress to ceforge (--progress=false for a run that needs Seqera's own token)")
	fl.StringVar(&f.idempotencyKey, "idempotency-key", "", "retry-safe key: the same key returns the same run")
	fl.BoolVar(&f.watch, "watch", false, "watch the run to its end after launching it")
}

func (a *app) runLaunch() *cobra.Command {
	var f launchFlags
	cmd := &cobra.Command{
		Use:   "launch",
		Short: "Launch a pipeline (or, with --studio, a studio)",
		Long: `Launch a run on a compute environment. Flags set the fields of POST /runs;
-f FILE (JSON or YAML) gives a whole request, which flags then override.
With --idempotency-key, retrying the same launch returns the same run.`,
		Example: `  ceforge run launch --ce CE_ID --pipeline nf-core/rnaseq --revision 3.14.0 \
    --config-profiles test,docker --params-file params.yaml --label team=genomics
  ceforge run launch --ce CE_ID --studio jupyter/base-notebook:2024-10-07 --port 8888
  ceforge run launch -f run.yaml --watch`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := f.request(a, cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			var hdr http.Header
			if f.idempotencyKey != "" {
				hdr = http.Header{"Idempotency-Key": {f.idempotencyKey}}
			}
			r, raw, err := call[runRec](ctx, c, request{method: http.MethodPost, path: "/runs", body: body, header: hdr}, "run")
			if err != nil {
				return err
			}
			if f.watch {
				if !a.quiet {
					fmt.Fprintf(a.io.Err, "launched %s\n", r.ID)
				}
				return a.watch(ctx, c, r.ID)
			}
			p := a.printer()
			return p.emit(raw, []string{r.ID}, func(w io.Writer) { p.runDetail(w, r) })
		},
	}
	f.addShared(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.studioImage, "studio", "", "launch a studio with this container image")
	fl.IntVar(&f.port, "port", 0, "studio port (default 8888)")
	fl.BoolVar(&f.spot, "spot", false, "studio on Spot (AWS Cloud CEs that allow it)")
	return cmd
}

func (a *app) runList() *cobra.Command {
	var ce, status string
	cmd := &cobra.Command{
		Use: "list", Short: "List runs, newest first", Args: noArgs,
		Example: `  ceforge run list
  ceforge run list --ce CE_ID --status FAILED -o json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			q := url.Values{}
			if ce != "" {
				q.Set("computeEnvId", ce)
			}
			if status != "" {
				q.Set("status", strings.ToUpper(status))
			}
			items, raw, err := listAll[runRec](ctx, c, "/runs", q)
			if err != nil {
				return err
			}
			p := a.printer()
			return emitItems(p, raw, items, func(r runRec) string { return r.ID }, p.runTable)
		},
	}
	cmd.Flags().StringVar(&ce, "ce", "", "only runs of this compute environment")
	cmd.Flags().StringVar(&status, "status", "", "only this status (SUBMITTED, RUNNING, SUCCEEDED, FAILED, CANCELLED, UNKNOWN)")
	return cmd
}

func (a *app) getRun(cmd *cobra.Command, id string) (*Client, runRec, json.RawMessage, error) {
	ctx := cmd.Context()
	c, err := a.api(ctx)
	if err != nil {
		return nil, runRec{}, nil, err
	}
	r, raw, err := call[runRec](ctx, c, request{method: http.MethodGet, path: "/runs/" + url.PathEscape(id)}, "run")
	if err != nil {
		return nil, runRec{}, nil, err
	}
	return c, r, raw, nil
}

func (a *app) runGet() *cobra.Command {
	return &cobra.Command{
		Use: "get RUN_ID", Short: "Show a run: status, timeline, exit code, tasks, head (and how to connect to a studio)",
		Args: oneArg("run id"),
		Example: `  ceforge run get RUN_ID
  ceforge run get RUN_ID -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, r, raw, err := a.getRun(cmd, args[0])
			if err != nil {
				return err
			}
			p := a.printer()
			return p.emit(raw, []string{r.ID}, func(w io.Writer) { p.runDetail(w, r) })
		},
	}
}

func (a *app) runCancel() *cobra.Command {
	return &cobra.Command{
		Use: "cancel RUN_ID", Short: "Cancel a run (its head and tasks stop; it ends CANCELLED)", Args: oneArg("run id"),
		Example: `  ceforge run cancel RUN_ID`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			r, raw, err := call[runRec](ctx, c, request{method: http.MethodPost, path: "/runs/" + url.PathEscape(args[0]) + "/cancel"}, "run")
			if err != nil {
				return err
			}
			p := a.printer()
			return p.emit(raw, []string{r.ID}, func(w io.Writer) { p.runDetail(w, r) })
		},
	}
}

func (a *app) runRelaunch() *cobra.Command {
	var f launchFlags
	var resume bool
	cmd := &cobra.Command{
		Use: "relaunch RUN_ID", Short: "Launch a new run from an earlier run's request", Args: oneArg("run id"),
		Long: `Launch a new run with the request of RUN_ID (POST /runs/{id}/relaunch);
flags and -f FILE replace the fields they set. With --resume, the new run
keeps the earlier run's work directory and resumes its Nextflow session
(-resume): tasks that completed are cached, not run again.`,
		Example: `  ceforge run relaunch RUN_ID --resume --watch
  ceforge run relaunch RUN_ID --revision 3.15.0 --max-cost 50`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.fields(a, cmd)
			if err != nil {
				return err
			}
			if resume {
				req["resume"] = true
			}
			body, err := json.Marshal(req)
			if err != nil {
				return usagef("encode request: %v", err)
			}
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			var hdr http.Header
			if f.idempotencyKey != "" {
				hdr = http.Header{"Idempotency-Key": {f.idempotencyKey}}
			}
			r, raw, err := call[runRec](ctx, c, request{method: http.MethodPost, path: "/runs/" + url.PathEscape(args[0]) + "/relaunch", body: json.RawMessage(body), header: hdr}, "run")
			if err != nil {
				return err
			}
			if f.watch {
				if !a.quiet {
					fmt.Fprintf(a.io.Err, "relaunched as %s\n", r.ID)
				}
				return a.watch(ctx, c, r.ID)
			}
			p := a.printer()
			return p.emit(raw, []string{r.ID}, func(w io.Writer) { p.runDetail(w, r) })
		},
	}
	f.addShared(cmd)
	cmd.Flags().BoolVar(&resume, "resume", false, "resume the earlier run's Nextflow session in its work directory")
	return cmd
}
