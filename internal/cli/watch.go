package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) runWatch() *cobra.Command {
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "watch RUN_ID",
		Short: "Follow a run to its end: status, time to running, task progress and failures",
		Long: `Follow a run until it ends. On a terminal the view is redrawn in place:
status, time to running, task counters and per-process progress bars (when
the deployment reports progress), and each task failure as it happens.
Elsewhere each change is printed as one line. Exits 0 when the run
SUCCEEDED and 3 when it FAILED or was CANCELLED.`,
		Example: `  ceforge run watch RUN_ID
  ceforge run watch RUN_ID > run.log   # one line per change`,
		Args: oneArg("run id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.api(ctx)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("interval") {
				a.poll = interval
			}
			return a.watch(ctx, c, args[0])
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often to ask for the run's state")
	return cmd
}

// watchState is what the watch loop knows about a run.
type watchState struct {
	run      runRec
	progress *runProgress // nil until the run's head reports (or never)
	failures []string     // task failure lines, oldest first
}

// taskCounts are the counters the view shows: Nextflow's when it reports,
// else the Batch run's from its jobs' events; nil when neither.
func (s watchState) taskCounts() *counters {
	if p := s.progress; p != nil && p.Phase != "waiting" {
		c := p.Counts
		return &counters{Submitted: c.Pending + c.Submitted, Running: c.Running, Succeeded: c.done(), Failed: c.Failed}
	}
	return s.run.Progress
}

// watchView renders the in-place view of a run (pure, for golden tests).
func watchView(s watchState, now time.Time, width int) []string {
	r := s.run
	what := r.Pipeline
	if r.Revision != "" {
		what += " @ " + r.Revision
	}
	if r.Studio != nil {
		what = "studio " + r.Studio.Image
	}
	lines := []string{fmt.Sprintf("run %s  %s  %s", r.ID, nonEmpty(r.RunName, "-"), what)}
	st := fmt.Sprintf("status  %s", r.Status)
	switch {
	case r.Timeline.Completed != nil && r.Timeline.Submitted != nil:
		st += fmt.Sprintf(" after %s", short(r.Timeline.Completed.Sub(*r.Timeline.Submitted)))
	case r.Timeline.Running != nil:
		st += fmt.Sprintf(" for %s", short(now.Sub(*r.Timeline.Running)))
	case r.Timeline.Submitted != nil:
		st += fmt.Sprintf(" for %s", short(now.Sub(*r.Timeline.Submitted)))
	}
	if r.TimeToRunningMs != nil {
		st += fmt.Sprintf("   time to running %s", ms(r.TimeToRunningMs))
	}
	if r.ExitCode != nil {
		st += fmt.Sprintf("   exit %d", *r.ExitCode)
	}
	lines = append(lines, st)
	if r.StatusReason != "" {
		lines = append(lines, "reason  "+r.StatusReason)
	}
	if c := s.taskCounts(); c != nil {
		lines = append(lines, fmt.Sprintf("tasks   %d submitted  %d running  %d succeeded  %d failed", c.Submitted, c.Running, c.Succeeded, c.Failed))
	}
	if p := s.progress; p != nil {
		if p.Cost.TotalUSD > 0 {
			cost := fmt.Sprintf("cost    $%.2f (tasks $%.2f, head $%.2f)", p.Cost.TotalUSD, p.Cost.TasksUSD, p.Cost.HeadUSD)
			if p.Cost.MaxCostUSD != nil {
				cost += fmt.Sprintf(" of at most $%.2f", *p.Cost.MaxCostUSD)
			}
			lines = append(lines, cost)
		}
		if p.Stale {
			lines = append(lines, "progress  stale: Nextflow has not reported for 5 minutes")
		}
	}
	if s.progress != nil && len(s.progress.Processes) > 0 {
		nameW := 8
		for _, p := range s.progress.Processes {
			nameW = max(nameW, min(len(p.Name), 32))
		}
		barW := max(10, min(40, width-nameW-24))
		for _, p := range s.progress.Processes {
			total, done := p.total(), p.done()
			lines = append(lines, fmt.Sprintf("  %-*s %s %d/%d%s", nameW, clip(p.Name, nameW), bar(done, p.Failed, total, barW), done, total, failedNote(p.Failed)))
		}
	}
	for _, f := range s.failures {
		lines = append(lines, "✗ "+f)
	}
	if r.Connect != nil {
		lines = append(lines, "connect  ceforge studio connect "+r.ID)
	}
	return lines
}

func failedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("  %d failed", n)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// bar is a progress bar of done (and failed) out of total.
func bar(done, failed, total, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("·", width) + "]"
	}
	d := done * width / total
	f := failed * width / total
	if failed > 0 && f == 0 {
		f = 1
	}
	if d+f > width {
		d = width - f
	}
	return "[" + strings.Repeat("█", d) + strings.Repeat("✗", f) + strings.Repeat("·", width-d-f) + "]"
}

// watch follows a run to its end.
func (a *app) watch(ctx context.Context, c *Client, id string) error {
	tty := a.io.IsTerminal && !a.quiet && a.output == formatTable
	var st watchState
	drawn := 0
	lastLine := ""
	seenFailures := map[int64]bool{}
	hasProgress, hasTasks := true, true
	lastFailed := 0
	for {
		var raw json.RawMessage
		if err := c.Do(ctx, http.MethodGet, "/runs/"+url.PathEscape(id), nil, nil, &raw); err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &st.run); err != nil {
			return fmt.Errorf("decode run: %w", err)
		}
		if hasProgress {
			var pv runProgress
			err := c.Do(ctx, http.MethodGet, "/runs/"+url.PathEscape(id)+"/progress", nil, nil, &pv)
			var ae *APIError
			switch {
			case err == nil && pv.Reporting:
				st.progress = &pv
			case err == nil:
				hasProgress = false // this run's head does not report
			case routeMissing(err):
				hasProgress = false // this deployment has no progress API
			case asAPIError(err, &ae) && ae.Status/100 == 4:
				// no progress yet
			default:
				return err
			}
		}
		failedNow := 0
		if c := st.taskCounts(); c != nil {
			failedNow = c.Failed
		}
		shown := len(st.failures)
		if hasTasks && failedNow > lastFailed {
			var pg page[task]
			err := c.Do(ctx, http.MethodGet, "/runs/"+url.PathEscape(id)+"/tasks", url.Values{"status": {"FAILED"}}, nil, &pg)
			var ae *APIError
			switch {
			case err == nil:
				for _, t := range pg.Items {
					if seenFailures[t.TaskID] {
						continue
					}
					seenFailures[t.TaskID] = true
					st.failures = append(st.failures, failureLine(t))
				}
			case routeMissing(err):
				hasTasks = false
			case asAPIError(err, &ae):
			default:
				return err
			}
		}
		if failedNow > lastFailed && len(st.failures) == shown {
			// The run's counters saw failures that no task record names
			// (no progress reporting, or not reported yet): say how many.
			st.failures = append(st.failures, fmt.Sprintf("%d task(s) failed (%d in all)", failedNow-lastFailed, failedNow))
		}
		lastFailed = failedNow
		now := a.now()
		if tty {
			lines := watchView(st, now, 100)
			var b strings.Builder
			if drawn > 0 {
				fmt.Fprintf(&b, "\x1b[%dA", drawn)
			}
			for _, l := range lines {
				b.WriteString("\r\x1b[2K" + l + "\n")
			}
			for i := len(lines); i < drawn; i++ {
				b.WriteString("\r\x1b[2K\n")
			}
			drawn = max(drawn, len(lines))
			io.WriteString(a.io.Out, b.String())
		} else if !a.quiet {
			for _, l := range changeLines(st, now, &lastLine) {
				fmt.Fprintln(a.io.Out, l)
			}
		}
		if runEnded(st.run.Status) {
			if a.quiet {
				fmt.Fprintln(a.io.Out, st.run.ID)
			}
			if st.run.Status != "SUCCEEDED" {
				return outcomeError{fmt.Sprintf("run %s %s%s", st.run.ID, st.run.Status, reasonSuffix(st.run.StatusReason))}
			}
			return nil
		}
		if err := a.sleep(ctx, a.poll); err != nil {
			return err
		}
	}
}

// failureLine describes a failed task.
func failureLine(t task) string {
	msg := fmt.Sprintf("task %s failed", nonEmpty(t.Name, t.Process))
	var why []string
	if t.Exit != nil {
		why = append(why, fmt.Sprintf("exit %d", *t.Exit))
	}
	if t.Attempt > 1 {
		why = append(why, fmt.Sprintf("attempt %d", t.Attempt))
	}
	if t.ErrorAction != "" {
		why = append(why, "error strategy "+strings.ToLower(t.ErrorAction))
	}
	if len(why) > 0 {
		msg += " (" + strings.Join(why, ", ") + ")"
	}
	if t.Workdir != "" {
		msg += ": " + t.Workdir
	}
	return msg
}

func reasonSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// changeLines is the line-per-change form of the view (not a terminal):
// a line when the status, counters or failures change.
func changeLines(s watchState, now time.Time, last *string) []string {
	r := s.run
	line := r.Status
	if r.Status == "RUNNING" && r.TimeToRunningMs != nil {
		line += " (time to running " + ms(r.TimeToRunningMs) + ")"
	}
	if c := s.taskCounts(); c != nil {
		line += fmt.Sprintf(" tasks %d/%d/%d/%d (submitted/running/succeeded/failed)", c.Submitted, c.Running, c.Succeeded, c.Failed)
	}
	if p := s.progress; p != nil {
		var parts []string
		for _, pr := range p.Processes {
			parts = append(parts, fmt.Sprintf("%s %d/%d", pr.Name, pr.done(), pr.total()))
		}
		if len(parts) > 0 {
			line += " [" + strings.Join(parts, ", ") + "]"
		}
	}
	if runEnded(r.Status) {
		if r.ExitCode != nil {
			line += fmt.Sprintf(" exit %d", *r.ExitCode)
		}
		line += reasonSuffix(r.StatusReason)
	}
	line += fmt.Sprintf("  failures=%d", len(s.failures))
	if line == *last {
		return nil
	}
	prevFailures := 0
	if i := strings.LastIndex(*last, "failures="); i >= 0 {
		fmt.Sscan((*last)[i+len("failures="):], &prevFailures)
	}
	*last = line
	out := []string{}
	for _, f := range s.failures[min(prevFailures, len(s.failures)):] {
		out = append(out, now.Format("15:04:05")+" ✗ "+f)
	}
	text, _, _ := strings.Cut(line, "  failures=")
	return append(out, now.Format("15:04:05")+" "+r.ID+" "+text)
}
