package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) sweepCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "sweep",
		Aliases: []string{"sweeps"},
		Short:   "Delete what runs left behind (unattached volumes, outlived instances, stray jobs), or report it",
		Example: `  ceforge sweep start --dry-run --wait   # what would go, and what it saves
  ceforge sweep start --wait
  ceforge sweep list
  ceforge sweep get SWEEP_ID`,
	}
	cmd.AddCommand(a.sweepStart(), a.sweepList(), a.sweepGet())
	return cmd
}

func (a *app) sweepStart() *cobra.Command {
	var dry, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use: "start", Short: "Start a sweep now", Args: noArgs,
		Example: `  ceforge sweep start --dry-run --wait`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			r, raw, err := call[sweepReport](ctx, c, request{method: http.MethodPost, path: "/sweeps", body: map[string]any{"dryRun": dry}}, "sweep")
			if err != nil {
				return err
			}
			if wait {
				return a.waitSweep(ctx, c, r.ID, timeout)
			}
			p := a.printer()
			return p.emit(raw, []string{r.ID}, func(w io.Writer) { p.sweepDetail(w, r) })
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "only report what would be deleted")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the sweep ends and print its report")
	cmd.Flags().DurationVar(&timeout, "timeout", 20*time.Minute, "longest --wait")
	return cmd
}

func (a *app) waitSweep(ctx context.Context, c *Client, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sp := newSpinner(a.io.Err, a.io.IsTerminal && !a.quiet)
	defer sp.stop()
	for {
		r, raw, err := call[sweepReport](ctx, c, request{method: http.MethodGet, path: "/sweeps/" + url.PathEscape(id)}, "sweep")
		if err != nil {
			return err
		}
		sp.set(fmt.Sprintf("sweep %s: %s", id, r.Status))
		if sweepEnded(r.Status) {
			sp.stop()
			p := a.printer()
			if err := p.emit(raw, []string{r.ID}, func(w io.Writer) { p.sweepDetail(w, r) }); err != nil {
				return err
			}
			if r.Status == "FAILED" {
				return outcomeError{fmt.Sprintf("sweep %s FAILED%s", id, reasonSuffix(r.StopReason))}
			}
			return nil
		}
		if err := a.sleep(ctx, a.poll); err != nil {
			return fmt.Errorf("sweep %s: still %s after %s", id, r.Status, timeout)
		}
	}
}

func (a *app) sweepList() *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List sweep reports, newest first", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			items, raw, err := listAll[sweepReport](ctx, c, "/sweeps", url.Values{})
			if err != nil {
				return err
			}
			p := a.printer()
			return emitItems(p, raw, items, func(r sweepReport) string { return r.ID }, p.sweepTable)
		},
	}
}

func (a *app) sweepGet() *cobra.Command {
	return &cobra.Command{
		Use: "get SWEEP_ID", Short: "Show a sweep's report: counts per kind, GiB freed, savings, skipped items", Args: oneArg("sweep id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			r, raw, err := call[sweepReport](ctx, c, request{method: http.MethodGet, path: "/sweeps/" + url.PathEscape(args[0])}, "sweep")
			if err != nil {
				return err
			}
			p := a.printer()
			return p.emit(raw, []string{r.ID}, func(w io.Writer) { p.sweepDetail(w, r) })
		},
	}
}
