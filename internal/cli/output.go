package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Output formats.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// printer writes answers in the chosen format. Tables are for people;
// json and yaml print the API's answer as is (re-indented); quiet prints
// ids only, one a line, for scripts.
type printer struct {
	out    io.Writer
	format string
	quiet  bool
	now    func() time.Time
}

// emit prints raw (the API's JSON) as json/yaml, else calls table, or,
// quiet, prints ids.
func (p *printer) emit(raw json.RawMessage, ids []string, table func(w io.Writer)) error {
	if p.quiet {
		for _, id := range ids {
			fmt.Fprintln(p.out, id)
		}
		return nil
	}
	switch p.format {
	case formatJSON:
		var buf bytes.Buffer
		if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
			return fmt.Errorf("format answer: %w", err)
		}
		buf.WriteByte('\n')
		_, err := p.out.Write(buf.Bytes())
		return err
	case formatYAML:
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("format answer: %w", err)
		}
		enc := yaml.NewEncoder(p.out)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("format answer: %w", err)
		}
		return enc.Close()
	}
	table(p.out)
	return nil
}

// tab returns a tab writer for aligned columns.
func tab(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func row(w io.Writer, cols ...string) {
	for i, c := range cols {
		if c == "" {
			cols[i] = "-"
		}
	}
	fmt.Fprintln(w, strings.Join(cols, "\t"))
}

// age is a short duration since t, as in kubectl.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return short(now.Sub(t))
}

func short(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func ms(v *int64) string {
	if v == nil {
		return ""
	}
	return (time.Duration(*v) * time.Millisecond).Round(100 * time.Millisecond).String()
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// kv prints a vertical table of one record.
func kv(w io.Writer, pairs ...string) {
	t := tab(w)
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		fmt.Fprintf(t, "%s:\t%s\n", pairs[i], pairs[i+1])
	}
	t.Flush()
}

func (p *printer) ceTable(w io.Writer, ces []computeEnv) {
	t := tab(w)
	row(t, "ID", "NAME", "PLATFORM", "MODE", "REGION", "STATUS", "AGE")
	for _, c := range ces {
		row(t, c.ID, c.Name, c.Platform, c.ConfigMode, c.Region, c.Status, age(p.now(), c.CreatedAt))
	}
	t.Flush()
}

func (p *printer) ceDetail(w io.Writer, c computeEnv) {
	kv(w, "ID", c.ID, "Name", c.Name, "Platform", c.Platform, "Mode", c.ConfigMode, "Region", c.Region,
		"Work dir", c.WorkDir, "Status", c.Status, "Reason", c.StatusReason, "Created", stamp(&c.CreatedAt)+" by "+c.CreatedBy)
	for _, warn := range c.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", warn)
	}
	if len(c.ForgedResources) > 0 {
		fmt.Fprintln(w, "\nResources:")
		p.resourceTable(w, c.ForgedResources)
	}
}

func (p *printer) resourceTable(w io.Writer, rs []resource) {
	t := tab(w)
	row(t, "  TYPE", "NAME", "STATE")
	for _, r := range rs {
		name := r.Name
		if name == "" {
			name = r.ID
		}
		if name == "" {
			name = r.ARN
		}
		row(t, "  "+r.Type, name, r.State)
	}
	t.Flush()
}

func (p *printer) planTable(w io.Writer, d dryRun) {
	if d.ComputeEnv != nil {
		fmt.Fprintf(w, "Plan for %s (%s, %s), nothing created:\n", d.ComputeEnv.Name, d.ComputeEnv.Platform, d.ComputeEnv.Region)
		for _, warn := range d.ComputeEnv.Warnings {
			fmt.Fprintf(w, "Warning: %s\n", warn)
		}
	}
	t := tab(w)
	row(t, "ACTION", "TYPE", "NAME")
	if d.Plan != nil {
		for _, r := range d.Plan.Resources {
			row(t, r.Action, r.Type, r.Name)
		}
	}
	t.Flush()
}

func (p *printer) runTable(w io.Writer, runs []runRec) {
	t := tab(w)
	row(t, "ID", "NAME", "KIND", "CE", "STATUS", "TO RUNNING", "EXIT", "AGE")
	for _, r := range runs {
		exit := ""
		if r.ExitCode != nil {
			exit = fmt.Sprint(*r.ExitCode)
		}
		row(t, r.ID, r.RunName, r.Kind, r.ComputeEnvID, r.Status, ms(r.TimeToRunningMs), exit, age(p.now(), r.CreatedAt))
	}
	t.Flush()
}

func (p *printer) runDetail(w io.Writer, r runRec) {
	exit := ""
	if r.ExitCode != nil {
		exit = fmt.Sprint(*r.ExitCode)
	}
	what := r.Pipeline
	if r.Revision != "" {
		what += " @ " + r.Revision
	}
	if r.Studio != nil {
		what = fmt.Sprintf("studio %s (port %d)", r.Studio.Image, r.Studio.Port)
	}
	head := ""
	if b := r.Backend; b != nil {
		head = strings.TrimSpace(b.InstanceID + " " + b.JobID)
	}
	tasks := ""
	if c := r.Progress; c != nil {
		tasks = fmt.Sprintf("%d submitted, %d running, %d succeeded, %d failed", c.Submitted, c.Running, c.Succeeded, c.Failed)
	}
	reporting := ""
	if tr := r.Trace; tr != nil {
		reporting = "on (ceforge run progress " + r.ID + ")"
		if !tr.Enabled {
			reporting = "off: " + nonEmpty(tr.Reason, "not reported")
		}
	}
	maxCost := ""
	if r.MaxCostUSD != nil {
		maxCost = fmt.Sprintf("$%.2f", *r.MaxCostUSD)
	}
	relaunch := r.RelaunchOf
	if relaunch != "" && r.ResumeSessionID != "" {
		relaunch += " (resumes session " + r.ResumeSessionID + ")"
	}
	kv(w, "ID", r.ID, "Name", r.RunName, "Kind", r.Kind, "Runs", what, "Compute env", r.ComputeEnvID+" ("+r.Platform+")",
		"Work dir", r.WorkDir, "Status", r.Status, "Reason", r.StatusReason, "Exit code", exit,
		"Submitted", stamp(r.Timeline.Submitted), "Running", stamp(r.Timeline.Running), "Completed", stamp(r.Timeline.Completed),
		"To running", ms(r.TimeToRunningMs), "Tasks", tasks, "Progress", reporting, "Max cost", maxCost, "Head", head,
		"Relaunch of", relaunch, "Labels", r.Labels.String())
	if c := r.Connect; c != nil {
		fmt.Fprintf(w, "\nConnect:     ceforge studio connect %s\n   or:       %s\n", r.ID, c.Command)
	}
}

func (l labelsType) String() string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

func (p *printer) sweepTable(w io.Writer, rs []sweepReport) {
	t := tab(w)
	row(t, "ID", "STATUS", "TRIGGER", "DRY RUN", "VOLUMES", "INSTANCES", "JOBS", "GIB FREED", "USD/MONTH", "AGE")
	for _, r := range rs {
		row(t, r.ID, r.Status, r.Trigger, fmt.Sprint(r.DryRun), r.Volumes.done(r.DryRun), r.Instances.done(r.DryRun), r.Jobs.done(r.DryRun),
			fmt.Sprint(r.GiBFreed), fmt.Sprintf("%.2f", r.DollarsPerMonthSaved), age(p.now(), r.CreatedAt))
	}
	t.Flush()
}

func (c sweepCount) done(dryRun bool) string {
	if dryRun {
		return fmt.Sprintf("%d would go", c.WouldDelete)
	}
	return fmt.Sprintf("%d deleted", c.Deleted)
}

func (p *printer) sweepDetail(w io.Writer, r sweepReport) {
	kv(w, "ID", r.ID, "Status", r.Status, "Trigger", r.Trigger, "Dry run", fmt.Sprint(r.DryRun), "Created", stamp(&r.CreatedAt),
		"Finished", stamp(r.FinishedAt), "Stopped", r.StopReason,
		"GiB freed", fmt.Sprint(r.GiBFreed), "GiB reclaimable", fmt.Sprint(r.GiBReclaimable), "Saved", fmt.Sprintf("$%.2f a month", r.DollarsPerMonthSaved))
	t := tab(w)
	fmt.Fprintln(w)
	row(t, "KIND", "EXAMINED", "ELIGIBLE", "DELETED", "WOULD DELETE", "SKIPPED", "FAILED")
	for _, k := range []struct {
		name string
		c    sweepCount
	}{{"volumes", r.Volumes}, {"instances", r.Instances}, {"jobs", r.Jobs}} {
		row(t, k.name, fmt.Sprint(k.c.Examined), fmt.Sprint(k.c.Eligible), fmt.Sprint(k.c.Deleted), fmt.Sprint(k.c.WouldDelete), fmt.Sprint(k.c.Skipped), fmt.Sprint(k.c.Failed))
	}
	t.Flush()
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped %d %s: %s\n", s.Count, s.Kind, s.Reason)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

// emitItems prints a listing: its items' ids (--quiet), the answer as sent
// (-o json|yaml) or table.
func emitItems[T any](p *printer, raw json.RawMessage, items []T, id func(T) string, table func(io.Writer, []T)) error {
	ids := make([]string, len(items))
	for i, v := range items {
		ids[i] = id(v)
	}
	return p.emit(raw, ids, func(w io.Writer) { table(w, items) })
}
