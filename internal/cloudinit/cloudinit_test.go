package cloudinit

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMultipartRoundTrip(t *testing.T) {
	parts := []Part{{Type: ShellScript, Body: "#!/bin/bash\necho one\n"}, {Type: CloudConfig, Body: "#cloud-config\nruncmd: []"}}
	got, err := Parse([]byte(Multipart(parts...)))
	require.NoError(t, err)
	require.Equal(t, []Part{{ShellScript, "#!/bin/bash\necho one\n"}, {CloudConfig, "#cloud-config\nruncmd: []\n"}}, got)
}

// TestParseIsAsLenientAsCloudInit pins the parser's reading on the cases
// where Python's email parser and Go's differ.
func TestParseIsAsLenientAsCloudInit(t *testing.T) {
	const head = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/x-shellscript\n\n#!/bin/bash\n"
	cases := []struct {
		name  string
		data  string
		types []string
	}{
		{"plain script is one part", "#!/bin/bash\necho hi\n", []string{ShellScript}},
		{"plain cloud-config", "  #Cloud-Config\nruncmd: []\n", []string{CloudConfig}},
		{"unknown text stays plain", "hello", []string{PlainText}},
		{"mime-version in a script body: first line is no header, so one part",
			"#!/bin/bash\necho 'MIME-Version: 1.0'\necho 'Content-Type: multipart/mixed; boundary=X'\n\n--X\nContent-Type: text/x-shellscript\n\n#!/bin/sh\n--X--\n", []string{ShellScript}},
		{"bare CR ends a line: a second part", head + "echo a\r--B\rContent-Type: text/x-shellscript\r\r#!/bin/bash\recho evil\r--B--\n", []string{ShellScript, ShellScript}},
		{"CRLF document", strings.ReplaceAll(head+"echo a\n--B--\n", "\n", "\r\n"), []string{ShellScript}},
		{"boundary line with trailing blanks", head + "echo a\n--B \t\nContent-Type: text/cloud-config\n\nx: 1\n--B--\n", []string{ShellScript, CloudConfig}},
		{"text/plain part typed by its start", head + "echo a\n--B\nContent-Type: text/plain\n\n#cloud-boothook\nid\n--B--\n", []string{ShellScript, Boothook}},
		{"part without content type", head + "x\n--B\n\n#!/bin/sh\n--B--\n", []string{ShellScript, ShellScript}},
		{"base64 part", head + "x\n--B\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nIyEvYmluL3NoCmlk\n--B--\n", []string{ShellScript, ShellScript}},
		{"nested multipart", "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"O\"\n\n--O\nContent-Type: multipart/mixed; boundary=\"I\"\n\n--I\nContent-Type: text/x-shellscript\n\n#!/bin/sh\n--I--\n--O\nContent-Type: text/cloud-config\n\na: 1\n--O--\n", []string{ShellScript, CloudConfig}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parts, err := Parse([]byte(tc.data))
			require.NoError(t, err)
			var types []string
			for _, p := range parts {
				types = append(types, p.Type)
			}
			require.Equal(t, tc.types, types)
		})
	}
}

func TestParseInflatesGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(Multipart(Part{Type: ShellScript, Body: "#!/bin/bash\n"})))
	require.NoError(t, zw.Close())
	parts, err := Parse(buf.Bytes())
	require.NoError(t, err)
	require.Equal(t, []Part{{ShellScript, "#!/bin/bash\n"}}, parts)
}

// TestMultipartBoundaryNeverInBody: a part that writes what the boundary
// of a fixed-boundary document would be cannot split itself.
func TestMultipartBoundaryNeverInBody(t *testing.T) {
	for _, body := range []string{
		"#!/bin/bash\n--==CEFORGE==\nContent-Type: text/x-shellscript\n\n#!/bin/bash\nid\n",
		"#!/bin/bash\r--==CEFORGE==--\r\r",
		"#!/bin/bash\n" + strings.Repeat("-", 100),
	} {
		parts, err := Parse([]byte(Multipart(Part{Type: ShellScript, Body: body})))
		require.NoError(t, err)
		require.Len(t, parts, 1)
		require.Equal(t, wantBody(body), parts[0].Body)
	}
}

func TestHeredocDelimiter(t *testing.T) {
	d := HeredocDelimiter("EOF", "a\nEOF\n")
	require.True(t, strings.HasPrefix(d, "EOF_"))
	require.NotContains(t, "a\nEOF\n", d)
	require.Equal(t, d, HeredocDelimiter("EOF", "a\nEOF\n"), "deterministic")
}

// FuzzMultipart: whatever the bodies, the document parses back into exactly
// the parts rendered, with their text.
func FuzzMultipart(f *testing.F) {
	f.Add("#!/bin/bash\necho a\n", "x: 1")
	f.Add("#!/bin/bash\r--==CEFORGE==\rContent-Type: text/x-shellscript\r\r#!/bin/sh\r", "\r\n--x--")
	f.Fuzz(func(t *testing.T, a, b string) {
		parts := []Part{{Type: ShellScript, Body: a}, {Type: CloudConfig, Body: b}}
		got, err := Parse([]byte(Multipart(parts...)))
		if err != nil {
			// Only a part whose text is not a valid part body can fail: a
			// header-looking NUL-free body never does.
			t.Fatalf("own document does not parse: %v", err)
		}
		require.Len(t, got, 2)
		require.Equal(t, ShellScript, got[0].Type)
		require.Equal(t, CloudConfig, got[1].Type)
		for i, p := range parts {
			require.Equal(t, wantBody(p.Body), got[i].Body)
		}
	})
}

// wantBody is how a rendered body reads back: lines end in LF, and the
// last one is ended.
func wantBody(body string) string {
	w := normalizeNewlines(body)
	if !strings.HasSuffix(w, "\n") {
		w += "\n"
	}
	return w
}
