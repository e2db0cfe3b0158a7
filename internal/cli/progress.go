package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) runProgress() *cobra.Command {
	return &cobra.Command{
		Use:   "progress RUN_ID",
		Short: "Show what Nextflow reports of a run: task counts per process, cost, how it ended",
		Long: `Show a run's live progress as its head's Nextflow reports it to ceforge
(GET /runs/{id}/progress): the workflow's and each process's task counts,
the cost so far, and the Nextflow session (what --resume continues).`,
		Example: `  ceforge run progress RUN_ID
  ceforge run progress RUN_ID -o json`,
		Args: oneArg("run id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			pv, raw, err := call[runProgress](ctx, c, request{method: http.MethodGet, path: "/runs/" + url.PathEscape(args[0]) + "/progress"}, "progress")
			if err != nil {
				return err
			}
			p := a.printer()
			return p.emit(raw, []string{pv.RunID}, func(w io.Writer) { p.progressDetail(w, pv) })
		},
	}
}

// taskSorts are the orders GET /runs/{id}/tasks takes.
var taskSorts = []string{"start", "duration", "cost"}

func (a *app) runTasks() *cobra.Command {
	var status, process, sort string
	var limit int
	cmd := &cobra.Command{
		Use:   "tasks RUN_ID",
		Short: "List a run's tasks (as Nextflow reports them), by start, duration or cost",
		Example: `  ceforge run tasks RUN_ID
  ceforge run tasks RUN_ID --status FAILED
  ceforge run tasks RUN_ID --process ALIGN --sort cost --limit 10`,
		Args: oneArg("run id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if status != "" {
				q.Set("status", strings.ToUpper(status))
			}
			if process != "" {
				q.Set("process", process)
			}
			if sort != "" {
				ok := false
				for _, s := range taskSorts {
					ok = ok || s == sort
				}
				if !ok {
					return usagef("--sort %q: use one of %s", sort, strings.Join(taskSorts, ", "))
				}
				q.Set("sort", sort)
			}
			if limit < 0 {
				return usagef("--limit must be positive")
			}
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			path := "/runs/" + url.PathEscape(args[0]) + "/tasks"
			var items []task
			var raw json.RawMessage
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
				var pg page[task]
				if err := c.Do(ctx, http.MethodGet, path, q, nil, &raw); err != nil {
					return err
				}
				if err := json.Unmarshal(raw, &pg); err != nil {
					return fmt.Errorf("decode tasks: %w", err)
				}
				items = pg.Items
			} else if items, raw, err = listAll[task](ctx, c, path, q); err != nil {
				return err
			}
			p := a.printer()
			return emitItems(p, raw, items, func(t task) string { return fmt.Sprint(t.TaskID) }, p.taskTable)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&status, "status", "", "only this status (SUBMITTED, RUNNING, COMPLETED, FAILED, ABORTED, CACHED)")
	fl.StringVar(&process, "process", "", "only this process")
	fl.StringVar(&sort, "sort", "", "order: start (default, earliest first), duration or cost (largest first)")
	fl.IntVar(&limit, "limit", 0, "at most this many (default: all)")
	return cmd
}

func (p *printer) progressDetail(w io.Writer, pv runProgress) {
	if !pv.Reporting {
		kv(w, "Run", pv.RunID, "Status", pv.Status, "Progress", "not reported: "+nonEmpty(pv.ReportingReason, "the head does not report"))
		return
	}
	c := pv.Counts
	counts := fmt.Sprintf("%d pending, %d submitted, %d running, %d succeeded, %d failed, %d cached", c.Pending, c.Submitted, c.Running, c.Succeeded, c.Failed, c.Cached)
	if c.Retries > 0 || c.Ignored > 0 || c.Aborted > 0 {
		counts += fmt.Sprintf(", %d ignored, %d aborted, %d retries", c.Ignored, c.Aborted, c.Retries)
	}
	phase := pv.Phase
	if pv.Stale {
		phase += " (stale: Nextflow has not reported for 5 minutes)"
	}
	cost := fmt.Sprintf("$%.2f (tasks $%.2f, head $%.2f; prices of %s)", pv.Cost.TotalUSD, pv.Cost.TasksUSD, pv.Cost.HeadUSD, pv.Cost.PriceTable)
	if pv.Cost.MaxCostUSD != nil {
		cost += fmt.Sprintf(", at most $%.2f", *pv.Cost.MaxCostUSD)
	}
	if pv.Cost.UnpricedTasks > 0 {
		cost += fmt.Sprintf(", %d task(s) unpriced", pv.Cost.UnpricedTasks)
	}
	var session, nf, ended, errMsg string
	if wf := pv.Workflow; wf != nil {
		session, nf, errMsg = wf.SessionID, wf.NextflowVersion, firstLine(wf.ErrorMessage)
		if wf.Resume {
			session += " (resumed)"
		}
		if wf.Success != nil {
			ended = map[bool]string{true: "successfully", false: "with an error"}[*wf.Success]
		}
	}
	kv(w, "Run", pv.RunID, "Status", pv.Status, "Phase", phase, "Updated", stamp(pv.LastUpdate), "Tasks", counts, "Cost", cost,
		"Nextflow", nf, "Session", session, "Ended", ended, "Error", errMsg)
	if len(pv.Processes) == 0 {
		return
	}
	fmt.Fprintln(w)
	t := tab(w)
	row(t, "PROCESS", "PENDING", "SUBMITTED", "RUNNING", "SUCCEEDED", "FAILED", "CACHED", "DONE")
	for _, pr := range pv.Processes {
		row(t, pr.Name, fmt.Sprint(pr.Pending), fmt.Sprint(pr.Submitted), fmt.Sprint(pr.Running), fmt.Sprint(pr.Succeeded),
			fmt.Sprint(pr.Failed), fmt.Sprint(pr.Cached), fmt.Sprintf("%d/%d", pr.done(), pr.total()))
	}
	t.Flush()
}

func (p *printer) taskTable(w io.Writer, tasks []task) {
	t := tab(w)
	row(t, "ID", "PROCESS", "NAME", "STATUS", "EXIT", "ATTEMPT", "DURATION", "MACHINE", "COST", "NATIVE ID")
	for _, k := range tasks {
		exit, cost, dur := "", "", ""
		if k.Exit != nil {
			exit = fmt.Sprint(*k.Exit)
		}
		if k.CostUSD != nil {
			cost = fmt.Sprintf("$%.4f", *k.CostUSD)
		}
		if k.DurationMs != nil {
			dur = short(time.Duration(*k.DurationMs) * time.Millisecond)
		}
		machine := k.MachineType
		if machine != "" && k.PriceModel == "spot" {
			machine += " (spot)"
		}
		row(t, fmt.Sprint(k.TaskID), k.Process, k.Name, k.Status, exit, fmt.Sprint(k.Attempt), dur, machine, cost, k.NativeID)
	}
	t.Flush()
}
