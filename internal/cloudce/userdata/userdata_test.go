package userdata

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/ceforge/ceforge/internal/cloudinit"
)

func baseSpec() Spec {
	return Spec{
		RunID: "abc123def456gh", Region: "eu-west-1", LogGroup: "/ceforge/runs", WorkDir: "s3://bucket/work",
		MaxRunHours: 12, Pipeline: "nf-core/rnaseq", Revision: "3.14.0", ConfigProfiles: []string{"test", "docker"},
		ParamsText: `{"outdir": "s3://bucket/out"}`, ConfigText: "process.cpus = 2",
		PreRunScript: "echo pre", PostRunScript: "echo post",
		Env: []EnvVar{{Name: "FOO", Value: "bar"}},
	}
}

// assignments parses script and returns every top-level assignment word
// (plain and export), failing on a syntax error.
func assignments(t testing.TB, script string) map[string][]*syntax.Word {
	t.Helper()
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(script), "user-data")
	require.NoError(t, err, "rendered script must parse")
	out := map[string][]*syntax.Word{}
	for _, st := range f.Stmts {
		switch c := st.Cmd.(type) {
		case *syntax.CallExpr:
			if len(c.Args) == 0 {
				for _, a := range c.Assigns {
					out[a.Name.Value] = append(out[a.Name.Value], a.Value)
				}
			}
		case *syntax.DeclClause:
			for _, a := range c.Args {
				if a.Name != nil {
					out[a.Name.Value] = append(out[a.Name.Value], a.Value)
				}
			}
		}
	}
	return out
}

// requireLiteral checks word is one literal word (single quotes and escaped
// quotes and "'" only: no expansion of any kind) whose value is want.
func requireLiteral(t testing.TB, name string, word *syntax.Word, want string) {
	t.Helper()
	if want == "" && word == nil {
		return
	}
	require.NotNil(t, word, name)
	for _, p := range word.Parts {
		switch p := p.(type) {
		case *syntax.SglQuoted:
			require.False(t, p.Dollar, "%s: $'…' quoting", name)
		case *syntax.DblQuoted:
			// Only the "'" that carries an embedded single quote.
			require.Len(t, p.Parts, 1, name)
			lit, ok := p.Parts[0].(*syntax.Lit)
			require.True(t, ok && lit.Value == "'", "%s: double-quoted part may expand", name)
		default:
			t.Fatalf("%s: word part %T can expand", name, p)
		}
	}
	got, err := expand.Literal(nil, word)
	require.NoError(t, err)
	require.Equal(t, want, got, name)
}

func checkValues(t testing.TB, s Spec) {
	t.Helper()
	script, err := Render(s)
	require.NoError(t, err)
	as := assignments(t, script)
	want := map[string]string{
		"CEFORGE_RUN_ID": s.RunID, "CEFORGE_REGION": s.Region, "CEFORGE_LOG_GROUP": s.LogGroup,
		"CEFORGE_WORK_DIR": strings.TrimRight(s.WorkDir, "/"), "CEFORGE_PRE_RUN": s.PreRunScript,
		"CEFORGE_POST_RUN": s.PostRunScript,
	}
	if s.Pipeline != "" {
		want["CEFORGE_PIPELINE"], want["CEFORGE_REVISION"] = s.Pipeline, s.Revision
		want["CEFORGE_PROFILES"], want["CEFORGE_PARAMS"] = strings.Join(s.ConfigProfiles, ","), s.ParamsText
		want["CEFORGE_CONFIG"] = s.ConfigText
	} else {
		want["CEFORGE_STUDIO_IMAGE"] = s.StudioImage
	}
	for _, e := range s.Env {
		want[e.Name] = e.Value
	}
	for name, v := range want {
		words := as[name]
		require.Len(t, words, 1, "%s assigned once", name)
		requireLiteral(t, name, words[0], v)
	}
}

func TestRenderQuotesEveryValue(t *testing.T) {
	nasty := []string{
		"", "plain", "it's", "'", "''", `"$(rm -rf /)"`, "`id`", "$HOME ${x} $((1+1))", "a\nb\n'\n",
		"CEFORGE_EOF\nrm -rf /\n", `\'`, "; shutdown -h now #", "<(cat) >(cat) *?[a]", "ünïcødé ✓", "!$ !! ^a^b",
	}
	for _, v := range nasty {
		s := baseSpec()
		s.PreRunScript, s.PostRunScript, s.ConfigText, s.ParamsText, s.Revision, s.Pipeline = v, v, v, v, v, v
		s.ConfigProfiles = []string{v}
		s.Env = []EnvVar{{Name: "X", Value: v}}
		checkValues(t, s)
	}
}

func FuzzRenderQuoting(f *testing.F) {
	for _, seed := range []string{"", "x", "it's", "$(id)", "a\nb", "'\\''", "CEFORGE_EOF", "${IFS}"} {
		f.Add(seed, seed, seed)
	}
	f.Fuzz(func(t *testing.T, script, config, params string) {
		for _, v := range []string{script, config, params} {
			if strings.ContainsRune(v, 0) || !utf8.ValidString(v) {
				t.Skip("NUL bytes are refused by validation; the parser reads UTF-8")
			}
		}
		s := baseSpec()
		s.PreRunScript, s.PostRunScript, s.ConfigText, s.ParamsText = script, params, config, params
		s.Revision, s.Pipeline = config, script
		s.Env = []EnvVar{{Name: "A", Value: script}, {Name: "B", Value: config}}
		checkValues(t, s)
	})
}

func TestRenderContents(t *testing.T) {
	s := baseSpec()
	script, err := Render(s)
	require.NoError(t, err)
	for _, want := range []string{
		"CEFORGE_MAX_RUN_MINUTES='720'", `shutdown -h "+${CEFORGE_MAX_RUN_MINUTES}"`,
		`NXF_CLOUDCACHE_PATH="$CEFORGE_WORK_DIR/.ceforge/cache"`, `CEFORGE_DEST="${CEFORGE_WORK_DIR}/.ceforge/runs/${CEFORGE_RUN_ID}"`,
		"CEFORGE_PARAMS_FILE='params.json'", "amazon-cloudwatch-agent-ctl", `"log_stream_name":"abc123def456gh"`,
		`"log_group_name":"/ceforge/runs"`, "trap ceforge_finish EXIT", "shutdown -h now", " -e FOO",
		"exit-status", "nextflow.log",
	} {
		require.Contains(t, script, want)
	}
	s.ParamsText = "outdir: s3://b/out\n"
	script, err = Render(s)
	require.NoError(t, err)
	require.Contains(t, script, "CEFORGE_PARAMS_FILE='params.yaml'")

	studio := Spec{RunID: "r", Region: "us-east-1", LogGroup: "/g", WorkDir: "s3://b", StudioImage: "jupyter/base:1", StudioPort: 8888}
	script, err = Render(studio)
	require.NoError(t, err)
	require.Contains(t, script, "CEFORGE_STUDIO_IMAGE='jupyter/base:1'")
	require.NotContains(t, script, "nextflow run")
	require.Contains(t, script, "CEFORGE_MAX_RUN_MINUTES='10080'", "default 168 h")

	_, err = Render(Spec{})
	require.Error(t, err)
}

func TestBuildCompressesOrRefuses(t *testing.T) {
	s := baseSpec()
	small, err := Build(s)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(small, []byte("#!/bin/bash")))

	// Large but compressible: gzip.
	s.ConfigText = strings.Repeat("process.cpus = 2\n", 2000)
	big, err := Build(s)
	require.NoError(t, err)
	require.LessOrEqual(t, len(big), MaxBytes)
	zr, err := gzip.NewReader(bytes.NewReader(big))
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Contains(t, string(plain), "process.cpus = 2")

	// Large and incompressible: a clear error.
	var rnd strings.Builder
	x := uint64(88172645463325252)
	for rnd.Len() < 40<<10 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		rnd.WriteByte(byte('!' + x%90))
	}
	s.ConfigText = rnd.String()
	_, err = Build(s)
	require.ErrorIs(t, err, ErrTooLarge)
}

func TestExitStatusKey(t *testing.T) {
	require.Equal(t, "work/.ceforge/runs/r1/exit-status", ExitStatusKey("work/", "r1"))
	require.Equal(t, ".ceforge/runs/r1/exit-status", ExitStatusKey("", "r1"))
}

func BenchmarkUserDataRender(b *testing.B) {
	s := baseSpec()
	s.ConfigText = strings.Repeat("process.cpus = 2\n", 50)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(s); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRenderBashSyntax checks the scripts with bash itself (-n: parse only).
func TestRenderBashSyntax(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	studio := Spec{RunID: "r", Region: "us-east-1", LogGroup: "/g", WorkDir: "s3://b", StudioImage: "jupyter/base:1", StudioPort: 8888}
	for _, s := range []Spec{baseSpec(), studio} {
		script, err := Render(s)
		require.NoError(t, err)
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
}

// TestRenderRunsWithStubs executes the pipeline script with bash against
// stub commands (docker, aws, shutdown, …) in a scratch directory: values
// arrive intact, the exit code travels to the exit-status file in the work
// dir, the post-run script sees it, and the instance shuts down.
func TestRenderRunsWithStubs(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	root := t.TempDir()
	stubs, runDir, logDir, s3Root := root+"/bin", root+"/run", root+"/log", root+"/s3"
	require.NoError(t, os.MkdirAll(stubs, 0o755))
	stub := func(name, body string) {
		require.NoError(t, os.WriteFile(stubs+"/"+name, []byte("#!/bin/bash\n"+body+"\n"), 0o755))
	}
	stub("docker", `printf '%s\n' "$@" > "$STUB_LOG/docker.args"; exit 3`)
	stub("aws", `src="${@: -2:1}"; dst="${@: -1}"; mkdir -p "$(dirname "$S3_ROOT/${dst#s3://}")"; cp "$src" "$S3_ROOT/${dst#s3://}"`)
	stub("shutdown", `echo "$*" >> "$STUB_LOG/shutdown"`)
	for _, name := range []string{"dnf", "yum", "systemctl", "sleep"} {
		stub(name, "exit 0")
	}

	s := baseSpec()
	s.PreRunScript = `echo "it's \$HOME \` + "`" + `id\` + "`" + `" > pre.txt`
	s.PostRunScript = `echo "post $CEFORGE_EXIT_CODE" > post.txt`
	script, err := Render(s)
	require.NoError(t, err)
	script = strings.NewReplacer(RunDir, runDir, "/var/log/ceforge", logDir).Replace(script)

	cmd := exec.Command(bash, "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+stubs+":"+os.Getenv("PATH"), "STUB_LOG="+root, "S3_ROOT="+s3Root)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))

	exit, err := os.ReadFile(s3Root + "/bucket/work/.ceforge/runs/" + s.RunID + "/exit-status")
	require.NoError(t, err, string(out))
	require.Equal(t, "3\n", string(exit))
	post, err := os.ReadFile(runDir + "/post.txt")
	require.NoError(t, err)
	require.Equal(t, "post 3\n", string(post))
	pre, err := os.ReadFile(runDir + "/pre.txt")
	require.NoError(t, err)
	require.Equal(t, "it's $HOME `id`\n", string(pre), "the pre-run script runs as written")
	args, err := os.ReadFile(root + "/docker.args")
	require.NoError(t, err)
	for _, want := range []string{"nextflow\nrun\nnf-core/rnaseq\n", "-r\n3.14.0\n", "-profile\ntest,docker\n", "-params-file\nparams.json\n", "-e\nFOO\n", "NXF_CLOUDCACHE_PATH=s3://bucket/work/.ceforge/cache\n"} {
		require.Contains(t, string(args), want)
	}
	params, err := os.ReadFile(runDir + "/params.json")
	require.NoError(t, err)
	require.Equal(t, s.ParamsText+"\n", string(params))
	shut, err := os.ReadFile(root + "/shutdown")
	require.NoError(t, err)
	require.Contains(t, string(shut), "-h +720 ceforge watchdog")
	require.Contains(t, string(shut), "-h now")
	console, err := os.ReadFile(logDir + "/console.log")
	require.NoError(t, err)
	require.Contains(t, string(console), "ended with exit code 3")
}

func TestCloudWatchConfigIsJSON(t *testing.T) {
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(cloudWatchConfig(`/g"x`, "r1")), &v))
	files := v["logs"].(map[string]any)["logs_collected"].(map[string]any)["files"].(map[string]any)["collect_list"].([]any)
	require.Equal(t, `/g"x`, files[0].(map[string]any)["log_group_name"])
	require.Equal(t, ConsoleLog, files[0].(map[string]any)["file_path"])
}

// FuzzHeadUserDataParts builds the head instance's user data from arbitrary
// text and reads it as cloud-init would (gzip inflated, MIME detected by
// "mime-version:" in the first 4 KiB, line endings CR, LF or CRLF): exactly
// one part, a shell script, and every value still one quoted word.
func FuzzHeadUserDataParts(f *testing.F) {
	mimeish := "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/x-shellscript\r\n\r\n#!/bin/sh\rid\r--B--\r"
	f.Add(mimeish, "x", "y")
	f.Add("echo pre", "\r--B\rContent-Type: text/cloud-config\r\r#cloud-config\r", strings.Repeat("p", 20000))
	f.Fuzz(func(t *testing.T, script, config, params string) {
		for _, v := range []string{script, config, params} {
			if strings.ContainsRune(v, 0) || !utf8.ValidString(v) {
				t.Skip("NUL bytes are refused by validation; the parser reads UTF-8")
			}
		}
		s := baseSpec()
		s.PreRunScript, s.PostRunScript, s.ConfigText, s.ParamsText = script, config, config, params
		s.Env = []EnvVar{{Name: "A", Value: script}}
		data, err := Build(s)
		if errors.Is(err, ErrTooLarge) {
			return
		}
		require.NoError(t, err)
		parts, err := cloudinit.Parse(data)
		require.NoError(t, err)
		require.Len(t, parts, 1)
		require.Equal(t, cloudinit.ShellScript, parts[0].Type)
		text, err := Render(s)
		require.NoError(t, err)
		require.Equal(t, text, parts[0].Body, "not MIME: cloud-init runs the script as built")
	})
}

// TestRenderReportsProgress runs the pipeline script against stubs with
// progress reporting on: the head reads the token from the run's secret,
// hands it to the Nextflow container by name only, and runs Nextflow with
// -with-tower, TOWER_WORKFLOW_ID, -resume and Wave through the relay; a
// secret it cannot read leaves the run going without progress.
func TestRenderReportsProgress(t *testing.T) {
	bash, err := exec.LookPath("bash")
	require.NoError(t, err)
	for _, readable := range []bool{true, false} {
		root := t.TempDir()
		stubs, runDir, logDir := root+"/bin", root+"/run", root+"/log"
		require.NoError(t, os.MkdirAll(stubs, 0o755))
		stub := func(name, body string) {
			require.NoError(t, os.WriteFile(stubs+"/"+name, []byte("#!/bin/bash\n"+body+"\n"), 0o755))
		}
		stub("docker", `printf '%s\n' "$@" > "$STUB_LOG/docker.args"; printf '%s' "${TOWER_ACCESS_TOKEN:-}" > "$STUB_LOG/docker.token"; cp ceforge.config "$STUB_LOG/ceforge.config"; exit 0`)
		secret := `echo cft_secret123`
		if !readable {
			secret = `echo AccessDenied >&2; exit 254`
		}
		stub("aws", `if [ "$1" = secretsmanager ]; then
  [ "$2 $3 $4 $5 $6" = "get-secret-value --region eu-west-1 --secret-id ceforge-trace/r-abc" ] || exit 9
  `+secret+`
fi
exit 0`)
		for _, name := range []string{"dnf", "yum", "systemctl", "sleep", "shutdown"} {
			stub(name, "exit 0")
		}
		s := baseSpec()
		s.TraceURL, s.TraceSecret, s.Resume = "https://api.ceforge.test", "ceforge-trace/r-abc", "sess-42"
		script, err := Render(s)
		require.NoError(t, err)
		require.NotContains(t, script, "cft_")
		script = strings.NewReplacer(RunDir, runDir, "/var/log/ceforge", logDir).Replace(script)
		cmd := exec.Command(bash, "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+stubs+":"+os.Getenv("PATH"), "STUB_LOG="+root, "S3_ROOT="+root+"/s3")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		args, err := os.ReadFile(root + "/docker.args")
		require.NoError(t, err)
		token, err := os.ReadFile(root + "/docker.token")
		require.NoError(t, err)
		conf, err := os.ReadFile(root + "/ceforge.config")
		require.NoError(t, err)
		require.Contains(t, string(args), "-resume\nsess-42\n")
		if !readable {
			require.NotContains(t, string(args), "-with-tower")
			require.NotContains(t, string(args), "TOWER_ACCESS_TOKEN")
			require.Empty(t, string(token))
			require.Contains(t, string(out), "running without live progress")
			continue
		}
		require.Contains(t, string(args), "-with-tower\nhttps://api.ceforge.test\n")
		require.Contains(t, string(args), "-e\nTOWER_ACCESS_TOKEN\n-e\nTOWER_WORKFLOW_ID\n")
		require.NotContains(t, string(args), "cft_secret123", "the token is never on a command line")
		require.Equal(t, "cft_secret123", string(token))
		require.Contains(t, string(conf), `wave.endpoint = "https://api.ceforge.test/wave"`)
		require.NotContains(t, string(out), "cft_secret123")
	}
}
