package trace

import (
	"bytes"
	"strings"

	"github.com/ceforge/ceforge/internal/progress"
)

// ExitPending is the exit status Nextflow reports until a task ends
// (Integer.MAX_VALUE).
const ExitPending = 2147483647

// Field limits, the lengths Nextflow's own schema truncates to.
const (
	maxName     = 255
	maxHash     = 34
	maxWorkdir  = 512
	maxShort    = 25
	maxNativeID = 128
)

func cut(t Text, n int) string {
	s := string(t)
	if len(s) > n {
		s = s[:n]
		for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
			s = s[:len(s)-1]
		}
	}
	return s
}

// toTask converts one task record; false when it cannot be kept (no task
// id, or a status Nextflow does not define).
func toTask(b *TaskBody) (progress.Task, bool) {
	status := strings.ToUpper(strings.TrimSpace(string(b.Status)))
	if !b.TaskID.Set || b.TaskID.V < 0 || progress.TaskRank(status) == 0 {
		return progress.Task{}, false
	}
	t := progress.Task{
		TaskID: int64(b.TaskID.V), Status: status,
		Process: cut(b.Process, maxName), Name: cut(b.Name, maxName), Tag: cut(b.Tag, maxName),
		Hash: cut(b.Hash, maxHash), NativeID: cut(b.NativeID, maxNativeID), ErrorAction: cut(b.ErrorAction, maxShort),
		Submit: b.Submit.Ptr(), Start: b.Start.Ptr(), Complete: b.Complete.Ptr(),
		DurationMs: b.Duration.Int64(), RealtimeMs: b.Realtime.Int64(),
		Cpus: b.Cpus.Float(), MemoryBytes: b.Memory.Int64(), DiskBytes: b.Disk.Int64(), TimeMs: b.Time.Int64(),
		PercentCPU: b.PCPU.Float(), PercentMem: b.PMem.Float(),
		RSS: b.RSS.Int64(), PeakRSS: b.PeakRSS.Int64(), VMem: b.VMem.Int64(), PeakVMem: b.PeakVMem.Int64(),
		ReadChars: b.RChar.Int64(), WriteChars: b.WChar.Int64(), ReadBytes: b.ReadBytes.Int64(), WriteBytes: b.WriteBytes.Int64(),
		SysCR: b.SysCR.Int64(), SysCW: b.SysCW.Int64(), VolCtxt: b.VolCtxt.Int64(), InvCtxt: b.InvCtxt.Int64(),
		Executor: cut(b.Executor, maxShort), Queue: cut(b.Queue, maxName), MachineType: cut(b.MachineType, maxShort),
		CloudZone: cut(b.CloudZone, maxShort), PriceModel: cut(b.PriceModel, 15), SpotInterruptions: b.NumSpotInterruptions.Int64(),
		Container: cut(b.Container, maxName), Workdir: cut(b.Workdir, maxWorkdir), Hostname: cut(b.Hostname, maxName),
	}
	if b.Attempt.Set {
		t.Attempt = int64(b.Attempt.V)
	}
	if b.Exit.Set && int64(b.Exit.V) != ExitPending {
		t.Exit = b.Exit.Int64()
	}
	return t, true
}

func n64(n Num) int64 {
	if !n.Set {
		return 0
	}
	return int64(n.V)
}

func toCounts(p *ProgressBody) progress.Counts {
	return progress.Counts{
		Pending: n64(p.Pending), Submitted: n64(p.Submitted), Running: n64(p.Running), Succeeded: n64(p.Succeeded),
		Failed: n64(p.Failed), Cached: n64(p.Cached), Ignored: n64(p.Ignored), Retries: n64(p.Retries), Aborted: n64(p.Aborted),
		LoadCpus: n64(p.LoadCpus), LoadMemory: n64(p.LoadMemory), PeakRunning: n64(p.PeakRunning),
		PeakCpus: n64(p.PeakCpus), PeakMemory: n64(p.PeakMemory),
	}
}

// maxProcesses bounds the per-process list kept in the snapshot.
const maxProcesses = 1000

func toProcesses(p *ProgressBody) []progress.ProcessProgress {
	out := make([]progress.ProcessProgress, 0, min(len(p.Processes), maxProcesses))
	for i := range p.Processes {
		if i == maxProcesses {
			break
		}
		pp := &p.Processes[i]
		out = append(out, progress.ProcessProgress{
			Index: n64(pp.Index), Name: cut(pp.Name, maxName), Terminated: pp.Terminated.V, Stored: n64(pp.Stored), Counts: toCounts(pp),
		})
	}
	return out
}

func flag(f Flag) *bool {
	if !f.Set {
		return nil
	}
	v := f.V
	return &v
}

func intPtr(n Num) *int {
	if !n.Set {
		return nil
	}
	v := int(n.V)
	return &v
}

func toWorkflow(w *WorkflowBody, processNames []Text) progress.Workflow {
	out := progress.Workflow{
		SessionID: cut(w.SessionID, 36), RunName: cut(w.RunName, 80), NextflowVersion: cut(w.Nextflow.Version, 40),
		NextflowBuild: cut(w.Nextflow.Build, 40), CommandLine: string(w.CommandLine), ProjectName: cut(w.ProjectName, maxName),
		Repository: cut(w.Repository, 512), Revision: cut(w.Revision, maxName), CommitID: cut(w.CommitID, 64),
		ScriptName: cut(w.ScriptName, maxName), Profile: cut(w.Profile, maxName), Resume: w.Resume.V, StubRun: w.StubRun.V,
		Container: cut(w.Container, 512), ContainerEngine: cut(w.ContainerEngine, 40),
		WorkDir: cut(w.WorkDir, 1024), LaunchDir: cut(w.LaunchDir, 1024), ProjectDir: cut(w.ProjectDir, 1024), OutputDir: cut(w.OutputDir, 1024),
		UserName: cut(w.UserName, maxName), WaveEnabled: w.Wave.Enabled.V, FusionEnabled: w.Fusion.Enabled.V,
		Start: w.Start.Ptr(), Complete: w.Complete.Ptr(), DurationMs: w.Duration.Int64(), Success: flag(w.Success),
		ExitStatus: intPtr(w.ExitStatus), ErrorMessage: cut(w.ErrorMessage, 4096), ErrorReport: string(w.ErrorReport),
		ConfigText: string(w.ConfigText),
	}
	if p := bytes.TrimSpace(w.Params); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		out.ParamsJSON = string(p)
	}
	for i, f := range w.ConfigFiles {
		if i == 50 {
			break
		}
		out.ConfigFiles = append(out.ConfigFiles, cut(f, 1024))
	}
	for i, n := range processNames {
		if i == maxProcesses {
			break
		}
		out.ProcessNames = append(out.ProcessNames, cut(n, maxName))
	}
	return out
}

func toStats(s *StatsBody) *progress.Stats {
	if s == nil {
		return nil
	}
	return &progress.Stats{
		Mean: s.Mean.V, Min: s.Min.V, Q1: s.Q1.V, Q2: s.Q2.V, Q3: s.Q3.V, Max: s.Max.V,
		MinLabel: cut(s.MinLabel, maxName), MaxLabel: cut(s.MaxLabel, maxName),
		Q1Label: cut(s.Q1Label, maxName), Q2Label: cut(s.Q2Label, maxName), Q3Label: cut(s.Q3Label, maxName),
	}
}

func toMetrics(ms []MetricsBody) []progress.ProcessMetrics {
	out := make([]progress.ProcessMetrics, 0, len(ms))
	for i := range ms {
		m := &ms[i]
		if m.Process == "" {
			continue
		}
		out = append(out, progress.ProcessMetrics{
			Process: cut(m.Process, maxName), CPU: toStats(m.CPU), Mem: toStats(m.Mem), VMem: toStats(m.VMem),
			Time: toStats(m.Time), Reads: toStats(m.Reads), Writes: toStats(m.Writes),
			CPUUsage: toStats(m.CPUUsage), MemUsage: toStats(m.MemUsage), TimeUsage: toStats(m.TimeUsage),
		})
	}
	return out
}
