package batchce_test

import (
	"encoding/base64"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"mvdan.cc/sh/v3/syntax"

	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/shellstub"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// headSandbox stubs what a head container offers: nextflow (run and fs cp)
// and the AWS CLI, both writing "S3" under <root>/s3.
func headSandbox(t *testing.T) *shellstub.Sandbox {
	t.Helper()
	s := shellstub.New(t)
	s.Stub("aws", `[ "$1 $2" = "s3 cp" ] || exit 2
src="${@: -2:1}"; dst="${@: -1}"
echo "upload ${dst##*/}" >> "$STUB_ROOT/order"
mkdir -p "$(dirname "$STUB_ROOT/s3/${dst#s3://}")" && cp "$src" "$STUB_ROOT/s3/${dst#s3://}"`)
	s.Stub("nextflow", `if [ "$1" = -q ]; then
  [ "$4 $5" = "fs cp" ] || exit 2
  echo "upload ${7##*/}" >> "$STUB_ROOT/order"
  mkdir -p "$(dirname "$STUB_ROOT/s3/${7#s3://}")" && cp "$6" "$STUB_ROOT/s3/${7#s3://}"
  echo "rotated" > .nextflow.log
  exit 0
fi
cp ceforge.config "$STUB_ROOT/seen.config"
[ -f params.yml ] && cp params.yml "$STUB_ROOT/seen.params"
echo "nextflow started" > .nextflow.log
echo "task trace" > trace-20250101.txt
echo "<html>report</html>" > report-20250101.html
if [ -n "${NF_BLOCK:-}" ]; then
  trap 'echo "nextflow terminated" >> .nextflow.log; exit 143' TERM
  touch "$STUB_ROOT/nf-started"
  while :; do sleep 0.05; done
fi
echo "nextflow done" >> .nextflow.log
exit "${NF_EXIT:-0}"`)
	return s
}

// headEnv is a run's head environment (as the launcher builds it).
func headEnv(workDir string, extra ...string) []string {
	return append([]string{
		"CEFORGE_RUN_ID=r1", "CEFORGE_REGION=eu-west-1", "CEFORGE_RUN_NAME=run-r1", "CEFORGE_PIPELINE=nf-core/rnaseq", "CEFORGE_WORK_DIR=" + workDir,
		"CEFORGE_NF_CONFIG=" + b64("process.executor = 'awsbatch'\n"), "CEFORGE_REVISION=3.14.0", "CEFORGE_PROFILES=test,docker",
		"CEFORGE_PARAMS=" + b64(`{"outdir": "s3://b/out"}`),
		"CEFORGE_PRE_RUN=" + b64(`echo "pre $(id -u >/dev/null; echo ok)" > "$STUB_ROOT/pre.txt"`),
		"CEFORGE_POST_RUN=" + b64(`echo "post $CEFORGE_EXIT_CODE" >> "$STUB_ROOT/order"`),
	}, extra...)
}

func headScriptIn(s *shellstub.Sandbox) string {
	return strings.ReplaceAll(batchce.HeadScript, "/tmp/ceforge", s.Path("launch"))
}

func TestHeadScriptParses(t *testing.T) {
	_, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(batchce.HeadScript), "head")
	require.NoError(t, err)
	bash, err := exec.LookPath("bash")
	require.NoError(t, err)
	out, err := exec.Command(bash, "-n", "-c", batchce.HeadScript).CombinedOutput()
	require.NoError(t, err, string(out))
}

// Every way a head ends uploads nextflow.log (and the trace and report it
// finds) to <workDir>/.ceforge/runs/<run-id>/, runs the post-run script
// with the exit code, and exits with Nextflow's code.
func TestHeadScriptEnds(t *testing.T) {
	const dest = "s3/bucket/work/.ceforge/runs/r1/"
	cases := []struct {
		name      string
		env       []string
		noAWSCLI  bool
		preFails  bool
		wantExit  int
		wantOrder []string
		wantLog   string
	}{
		{name: "success", wantExit: 0, wantLog: "nextflow done",
			wantOrder: []string{"post 0", "upload nextflow.log", "upload trace-20250101.txt", "upload report-20250101.html"}},
		{name: "nextflow fails", env: []string{"NF_EXIT=3"}, wantExit: 3, wantLog: "nextflow done",
			wantOrder: []string{"post 3", "upload nextflow.log", "upload trace-20250101.txt", "upload report-20250101.html"}},
		{name: "image without the AWS CLI copies with nextflow fs cp", noAWSCLI: true, wantExit: 0, wantLog: "nextflow done",
			wantOrder: []string{"post 0", "upload nextflow.log", "upload trace-20250101.txt", "upload report-20250101.html"}},
		{name: "pre-run fails: no nextflow, post-run still runs", preFails: true, wantExit: 7,
			wantOrder: []string{"post 7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := headSandbox(t)
			if tc.noAWSCLI {
				s.Remove("aws")
			}
			env := headEnv("s3://bucket/work/", tc.env...)
			if tc.preFails {
				env = append(env, "CEFORGE_PRE_RUN="+b64("echo failing; exit 7"))
			}
			res := s.Run(headScriptIn(s), env...)
			require.Equal(t, tc.wantExit, res.ExitCode, res.Output)
			require.Equal(t, tc.wantOrder, lines(s.ReadFile("order")), res.Output)
			if tc.preFails {
				require.Empty(t, s.Calls("nextflow"), "Nextflow does not run after a failed pre-run script")
				require.Contains(t, res.Output, "pre-run script failed with exit code 7")
				return
			}
			require.Equal(t, "pre ok\n", s.ReadFile("pre.txt"), "the pre-run script runs as written")
			require.Contains(t, s.ReadFile(dest+"nextflow.log"), tc.wantLog)
			require.NotContains(t, s.ReadFile(dest+"nextflow.log"), "rotated", "the upload is a snapshot of Nextflow's own log")
			require.Equal(t, "task trace\n", s.ReadFile(dest+"trace-20250101.txt"))
			require.Equal(t, "process.executor = 'awsbatch'\n", s.ReadFile("seen.config"))
			require.Equal(t, `{"outdir": "s3://b/out"}`, s.ReadFile("seen.params"))
			runs := s.Calls("nextflow")
			require.Equal(t, []string{"run", "nf-core/rnaseq", "-c", "ceforge.config", "-w", "s3://bucket/work/", "-name", "run-r1",
				"-r", "3.14.0", "-profile", "test,docker", "-params-file", "params.yml"}, runs[0])
			if tc.noAWSCLI {
				require.Equal(t, []string{"-q", "-log", s.Path("launch") + "/copy.log", "fs", "cp", "nextflow.log", "s3://bucket/work/.ceforge/runs/r1/nextflow.log"}, runs[1])
			} else {
				require.Contains(t, s.Called("aws"), "aws s3 cp --only-show-errors --region eu-west-1 nextflow.log s3://bucket/work/.ceforge/runs/r1/nextflow.log")
			}
		})
	}
}

// TerminateJob stops the container with SIGTERM: the head forwards it to
// Nextflow, waits for it to end, uploads the log first, then runs the
// post-run script.
func TestHeadScriptCancel(t *testing.T) {
	s := headSandbox(t)
	res := s.RunAndSignal(headScriptIn(s), "nf-started", syscall.SIGTERM, headEnv("s3://bucket/work", "NF_BLOCK=1")...)
	require.Equal(t, 143, res.ExitCode, res.Output)
	require.Contains(t, res.Output, "stop requested")
	log := s.ReadFile("s3/bucket/work/.ceforge/runs/r1/nextflow.log")
	require.Contains(t, log, "nextflow terminated", "Nextflow got the signal and its last words are uploaded")
	require.Equal(t, []string{"upload nextflow.log", "upload trace-20250101.txt", "upload report-20250101.html", "post 143"}, lines(s.ReadFile("order")))
}

// A work dir on a shared file system (EFS, FSx): the files are copied there.
func TestHeadScriptFileSystemWorkDir(t *testing.T) {
	s := headSandbox(t)
	work := s.Path("mnt/efs/work")
	res := s.Run(headScriptIn(s), headEnv(work)...)
	require.Equal(t, 0, res.ExitCode, res.Output)
	require.Contains(t, s.ReadFile("mnt/efs/work/.ceforge/runs/r1/nextflow.log"), "nextflow done")
	require.Empty(t, s.Calls("aws"))
}

func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// What Nextflow binds into every task: the hosts' file-system mounts at the
// same path, and with fast storage the NVMe scratch as the tasks' /tmp.
func TestTaskVolumes(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    computeenv.BatchOptions
		want []string
	}{
		{"S3 only", computeenv.BatchOptions{Forge: &computeenv.ForgeOptions{}}, nil},
		{"forge EFS and FSx", computeenv.BatchOptions{Forge: &computeenv.ForgeOptions{EfsMount: "/mnt/efs", FsxMount: "/mnt/fsx"}}, []string{"/mnt/efs", "/mnt/fsx"}},
		{"forge fast storage", computeenv.BatchOptions{Forge: &computeenv.ForgeOptions{FastStorage: true}}, []string{"/scratch/tasks:/tmp"}},
		{"manual mount", computeenv.BatchOptions{HeadQueue: "h", ComputeQueue: "c", WorkDirMount: "/shared"}, []string{"/shared"}},
		{"manual S3", computeenv.BatchOptions{HeadQueue: "h", ComputeQueue: "c"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			require.Equal(t, tc.want, batchce.TaskVolumes(&computeenv.ComputeEnv{Batch: &b}))
		})
	}
}
