// Package cloudinit renders EC2 user data as a MIME multi-part document and
// parses user data the way cloud-init does, so tests can assert exactly
// which parts an instance would run whatever text a user put in them.
//
// cloud-init reads user data with Python's email parser, which is more
// lenient than Go's: a bare CR, an LF or a CRLF each end a line, a first
// line that is not a header starts the body, and a payload that never says
// "MIME-Version:" in its first 4096 bytes is one part typed by how it starts
// ("#!" is a shell script). Parse reproduces those rules, using Go's
// mime/multipart for the parts.
package cloudinit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"sort"
	"strings"
	"unicode"
)

// Part types cloud-init acts on.
const (
	ShellScript = "text/x-shellscript"
	CloudConfig = "text/cloud-config"
	Boothook    = "text/cloud-boothook"
	PlainText   = "text/plain"
)

// Part is one part of user data: its effective type (for text/plain parts,
// the type cloud-init infers from how the text starts) and its body.
type Part struct {
	Type string
	Body string
}

// Multipart renders parts as a MIME multipart/mixed document (the format
// AWS Batch requires of launch-template user data). The boundary is derived
// from the parts and occurs in none of them, so no part's text can end its
// part or start another, whatever it contains.
func Multipart(parts ...Part) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p.Type + "\x00" + p.Body + "\x00"))
	}
	boundary := "==CEFORGE-" + hex.EncodeToString(h.Sum(nil))[:24] + "=="
	for clash(boundary, parts) { // unreachable in practice: a text holding its own digest
		boundary = "=" + boundary
	}
	var b strings.Builder
	b.WriteString("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"" + boundary + "\"\n\n")
	for _, p := range parts {
		b.WriteString("--" + boundary + "\nContent-Type: " + p.Type + "; charset=\"us-ascii\"\n\n")
		b.WriteString(p.Body)
		if !strings.HasSuffix(p.Body, "\n") {
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	b.WriteString("--" + boundary + "--\n")
	return b.String()
}

func clash(boundary string, parts []Part) bool {
	for _, p := range parts {
		if strings.Contains(p.Body, boundary) {
			return true
		}
	}
	return false
}

// HeredocDelimiter returns a here-document delimiter for body: base plus a
// digest of body, so no line of body (whatever its line endings) can close
// the here-document early.
func HeredocDelimiter(base, body string) string {
	sum := sha256.Sum256([]byte(body))
	d := base + "_" + hex.EncodeToString(sum[:])[:16]
	for strings.Contains(body, d) {
		d += "X"
	}
	return d
}

// mimeSniffBytes is how far cloud-init looks for "mime-version:".
const mimeSniffBytes = 4096

// Parse returns the parts cloud-init would find in user data, in order.
// Gzip-compressed user data is inflated first, as cloud-init does. A
// non-multipart body is returned as written; the parts of a multipart have
// their line endings normalised to LF (that is how the parser sees lines;
// a shell check on them is the stricter one).
func Parse(data []byte) ([]Part, error) {
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("inflate user data: %w", err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("inflate user data: %w", err)
		}
	}
	head := data[:min(len(data), mimeSniffBytes)]
	if !bytes.Contains(bytes.ToLower(head), []byte("mime-version:")) {
		return []Part{{Type: sniff(PlainText, string(data)), Body: string(data)}}, nil
	}
	header, body := splitHeader(string(data))
	var out []Part
	if err := walk(header, body, &out, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// normalizeNewlines turns CRLF and bare CR into LF: Python's email parser
// ends a line at any of them.
func normalizeNewlines(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// splitHeader reads a header block with Python's feedparser rules: a line
// ends at CR, LF or CRLF; a line is a header if it looks like "name:" (or
// continues the previous one with a space or tab); an empty line ends the
// headers; any other line ends them too and starts the body. The body is
// returned as written.
func splitHeader(text string) (textproto.MIMEHeader, string) {
	h := textproto.MIMEHeader{}
	var last string
	rest := text
	for rest != "" {
		end := strings.IndexAny(rest, "\r\n")
		line, after := rest, ""
		if end >= 0 {
			line, after = rest[:end], rest[end+1:]
			if rest[end] == '\r' && strings.HasPrefix(after, "\n") {
				after = after[1:]
			}
		}
		if line == "" {
			return h, after
		}
		switch {
		case (line[0] == ' ' || line[0] == '\t') && last != "":
			vals := h[last]
			vals[len(vals)-1] += " " + strings.TrimSpace(line)
		case isHeaderLine(line):
			name, value, _ := strings.Cut(line, ":")
			last = textproto.CanonicalMIMEHeaderKey(name)
			h.Add(last, strings.TrimSpace(value))
		default:
			return h, rest
		}
		rest = after
	}
	return h, ""
}

// isHeaderLine: Python's headerRE, "[\041-\071\073-\176]*:" at the start.
func isHeaderLine(line string) bool {
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c == ':' {
			return i > 0
		}
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return false
}

// maxDepth bounds nested multiparts.
const maxDepth = 8

func walk(h textproto.MIMEHeader, body string, out *[]Part, depth int) error {
	if depth > maxDepth {
		return errors.New("user data nests multiparts too deep")
	}
	ctype, params := contentType(h)
	if !strings.HasPrefix(ctype, "multipart/") || params["boundary"] == "" {
		payload, err := decodeBody(h, body)
		if err != nil {
			return err
		}
		*out = append(*out, Part{Type: sniff(ctype, payload), Body: payload})
		return nil
	}
	mr := multipart.NewReader(strings.NewReader(normalizeNewlines(body)), params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("user data multipart: %w", err)
		}
		b, err := io.ReadAll(bufio.NewReader(p))
		if err != nil {
			return fmt.Errorf("user data part: %w", err)
		}
		if err := walk(p.Header, string(b), out, depth+1); err != nil {
			return err
		}
	}
}

// contentType returns the part's media type: text/plain when absent or
// unparsable, as Python's email package defaults.
func contentType(h textproto.MIMEHeader) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		return PlainText, nil
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil || !strings.Contains(t, "/") {
		return PlainText, nil
	}
	return t, params
}

func decodeBody(h textproto.MIMEHeader, body string) (string, error) {
	if strings.EqualFold(strings.TrimSpace(h.Get("Content-Transfer-Encoding")), "base64") {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
		if err != nil {
			return "", fmt.Errorf("user data part: base64: %w", err)
		}
		return string(b), nil
	}
	return body, nil
}

// startsWith maps the first line's prefix of a text/plain part to the type
// cloud-init gives it (its handlers' INCLUSION_TYPES_MAP; longest first).
var startsWith = map[string]string{
	"#include":              "text/x-include-url",
	"#include-once":         "text/x-include-once-url",
	"#!":                    ShellScript,
	"#cloud-config":         CloudConfig,
	"#cloud-config-archive": "text/cloud-config-archive",
	"#upstart-job":          "text/upstart-job",
	"#part-handler":         "text/part-handler",
	"#cloud-boothook":       Boothook,
	"#cloud-config-jsonp":   "text/cloud-config-jsonp",
	"## template: jinja":    "text/jinja2",
}

var prefixesLongestFirst = func() []string {
	keys := make([]string, 0, len(startsWith))
	for k := range startsWith {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	return keys
}()

// sniff returns the effective type of a part: declared types stand; plain
// text (and cloud-init's "not multipart" marker) is typed by its start.
func sniff(declared, body string) string {
	if declared != PlainText && declared != "text/x-not-multipart" {
		return declared
	}
	// cloud-init compares the lower-cased text without leading whitespace.
	lc := strings.ToLower(strings.TrimLeftFunc(body, func(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }))
	for _, p := range prefixesLongestFirst {
		if strings.HasPrefix(lc, p) {
			return startsWith[p]
		}
	}
	return declared
}
