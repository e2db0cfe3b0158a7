package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"
)

func (a *app) ceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ce",
		Aliases: []string{"compute-env", "compute-envs"},
		Short:   "Create, list, inspect and delete compute environments",
		Example: `  ceforge ce create -f ce.yaml --dry-run      # the plan, nothing created
  ceforge ce create -f ce.yaml --wait         # until AVAILABLE (or ERRORED)
  ceforge ce list --status AVAILABLE
  ceforge ce get CE_ID -o yaml
  ceforge ce delete CE_ID --force --wait      # cancels its runs first`,
	}
	cmd.AddCommand(a.ceCreate(), a.ceList(), a.ceGet(), a.ceDelete())
	return cmd
}

// readRequest reads a JSON or YAML request body from path ("-": standard
// input) and returns it as JSON.
func (a *app) readRequest(path string) (json.RawMessage, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(a.io.In, 1<<20))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, usagef("read %s: %v", path, err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, usagef("%s is empty", path)
	}
	if json.Valid(b) {
		return b, nil
	}
	var v any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&v); err != nil {
		return nil, usagef("%s is neither JSON nor YAML: %v", path, err)
	}
	var extra any
	if dec.Decode(&extra) != io.EOF {
		return nil, usagef("%s holds more than one YAML document", path)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, usagef("%s must hold one object", path)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, usagef("%s: %v", path, err)
	}
	return out, nil
}

func (a *app) ceCreate() *cobra.Command {
	var file string
	var dry, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "create -f FILE",
		Short: "Create a compute environment from a JSON or YAML file",
		Long: `Create a compute environment from the request body in FILE (JSON or YAML;
"-" reads standard input). The fields are those of POST /compute-envs: see
the OpenAPI document (GET /openapi.json) for AWS Batch forge and manual
modes and AWS Cloud.`,
		Example: `  cat > ce.yaml <<'EOF'
  name: demo
  platform: aws-cloud
  region: eu-west-1
  workDir: s3://my-bucket/work
  EOF
  ceforge ce create -f ce.yaml --dry-run
  ceforge ce create -f ce.yaml --wait`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("-f FILE is required (\"-\" reads standard input)")
			}
			body, err := a.readRequest(file)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			p := a.printer()
			if dry {
				d, raw, err := call[dryRun](ctx, c, request{method: http.MethodPost, path: "/compute-envs", query: url.Values{"dryRun": {"true"}}, body: body}, "plan")
				if err != nil {
					return err
				}
				return p.emit(raw, nil, func(w io.Writer) { p.planTable(w, d) })
			}
			ce, raw, err := call[computeEnv](ctx, c, request{method: http.MethodPost, path: "/compute-envs", body: body}, "compute environment")
			if err != nil {
				return err
			}
			if wait {
				return a.waitCE(ctx, c, ce.ID, "AVAILABLE", timeout)
			}
			return p.emit(raw, []string{ce.ID}, func(w io.Writer) { p.ceDetail(w, ce) })
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "request body, JSON or YAML (\"-\": standard input)")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "print the plan (resources and policies); create nothing")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the compute environment is AVAILABLE (or ERRORED)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "longest --wait")
	return cmd
}

// waitCE polls a compute environment until it settles, showing its status
// and resource steps; want is AVAILABLE or DELETED.
func (a *app) waitCE(ctx context.Context, c *Client, id, want string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := a.printer()
	sp := newSpinner(a.io.Err, a.io.IsTerminal && !a.quiet)
	defer sp.stop()
	last := ""
	for {
		ce, raw, err := call[computeEnv](ctx, c, request{method: http.MethodGet, path: "/compute-envs/" + url.PathEscape(id)}, "compute environment")
		var ae *APIError
		if want == "DELETED" && asAPIError(err, &ae) && ae.Status == http.StatusNotFound {
			sp.stop()
			if !a.quiet {
				fmt.Fprintf(a.io.Out, "compute environment %s deleted\n", id)
			}
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("compute environment %s: still not %s after %s", id, want, timeout)
			}
			return err
		}
		done := 0
		for _, r := range ce.ForgedResources {
			if r.State == "" || r.State == "CREATED" || r.State == "VALID" || r.State == "ENABLED" || r.State == "AVAILABLE" || r.State == "ACTIVE" {
				done++
			}
		}
		line := fmt.Sprintf("%s %s: %s", id, ce.Name, ce.Status)
		if len(ce.ForgedResources) > 0 {
			line += fmt.Sprintf(" (%d resources", len(ce.ForgedResources))
			if n := len(ce.ForgedResources); n > 0 {
				r := ce.ForgedResources[n-1]
				line += ", last: " + r.Type + " " + nonEmpty(r.Name, r.ID)
			}
			line += ")"
		}
		if sp.on {
			sp.set(line)
		} else if line != last && !a.quiet {
			fmt.Fprintln(a.io.Err, line)
		}
		last = line
		_ = done
		if ceSettled(ce.Status) || ce.Status == want {
			sp.stop()
			if err := p.emit(raw, []string{ce.ID}, func(w io.Writer) { p.ceDetail(w, ce) }); err != nil {
				return err
			}
			if ce.Status != want {
				return outcomeError{fmt.Sprintf("compute environment %s is %s: %s", id, ce.Status, ce.StatusReason)}
			}
			return nil
		}
		if err := a.sleep(ctx, a.poll); err != nil {
			return fmt.Errorf("compute environment %s: still %s after %s", id, ce.Status, timeout)
		}
	}
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func asAPIError(err error, out **APIError) bool {
	e, ok := err.(*APIError)
	if ok {
		*out = e
	}
	return ok
}

func (a *app) ceList() *cobra.Command {
	var status string
	cmd := &cobra.Command{
		Use: "list", Short: "List compute environments, newest first", Args: noArgs,
		Example: `  ceforge ce list
  ceforge ce list --status AVAILABLE -q`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			q := url.Values{}
			if status != "" {
				q.Set("status", strings.ToUpper(status))
			}
			items, raw, err := listAll[computeEnv](ctx, c, "/compute-envs", q)
			if err != nil {
				return err
			}
			p := a.printer()
			return emitItems(p, raw, items, func(ce computeEnv) string { return ce.ID }, p.ceTable)
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only this status (CREATING, AVAILABLE, ERRORED, DELETING, DELETED, INVALID)")
	return cmd
}

// listAll reads every page of a listing and returns the items and one
// JSON document {"items": [...]} of them all.
func listAll[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, json.RawMessage, error) {
	var items []T
	var raws []json.RawMessage
	for pages := 0; pages < 1000; pages++ {
		var pg page[json.RawMessage]
		if err := c.Do(ctx, http.MethodGet, path, q, nil, &pg); err != nil {
			return nil, nil, err
		}
		for _, r := range pg.Items {
			var v T
			if err := json.Unmarshal(r, &v); err != nil {
				return nil, nil, fmt.Errorf("decode %s: %w", path, err)
			}
			items = append(items, v)
			raws = append(raws, r)
		}
		if pg.NextCursor == "" {
			break
		}
		q = cloneValues(q)
		q.Set("cursor", pg.NextCursor)
	}
	if raws == nil {
		raws = []json.RawMessage{}
	}
	raw, err := json.Marshal(map[string]any{"items": raws})
	return items, raw, err
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func (a *app) ceGet() *cobra.Command {
	return &cobra.Command{
		Use: "get CE_ID", Short: "Show a compute environment with its resources", Args: oneArg("compute environment id"),
		Example: `  ceforge ce get CE_ID
  ceforge ce get CE_ID -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			ce, raw, err := call[computeEnv](ctx, c, request{method: http.MethodGet, path: "/compute-envs/" + url.PathEscape(args[0])}, "compute environment")
			if err != nil {
				return err
			}
			p := a.printer()
			return p.emit(raw, []string{ce.ID}, func(w io.Writer) { p.ceDetail(w, ce) })
		},
	}
}

func (a *app) ceDelete() *cobra.Command {
	var force, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use: "delete CE_ID", Short: "Delete a compute environment (and what ceforge created for it)", Args: oneArg("compute environment id"),
		Long: `Delete a compute environment. While it has active runs the API refuses
(409) unless --force, which cancels them first.`,
		Example: `  ceforge ce delete CE_ID --wait
  ceforge ce delete CE_ID --force`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			q := url.Values{}
			if force {
				q.Set("force", "true")
			}
			ce, raw, err := call[computeEnv](ctx, c, request{method: http.MethodDelete, path: "/compute-envs/" + url.PathEscape(args[0]), query: q}, "compute environment")
			if err != nil {
				return err
			}
			if wait {
				return a.waitCE(ctx, c, args[0], "DELETED", timeout)
			}
			p := a.printer()
			return p.emit(raw, []string{ce.ID}, func(w io.Writer) { p.ceDetail(w, ce) })
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "cancel the compute environment's active runs first")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until it is DELETED")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "longest --wait")
	return cmd
}
