package logs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/ceforge/ceforge/internal/apierr"
)

// position is a place in a log stream: a CloudWatch forward token (empty =
// the head of the stream) and how many events after it were already read.
// The skip count lets every line carry its own exact resume point, so a
// client that disconnects in the middle of a batch neither loses nor
// repeats a line.
type position struct {
	Token string
	Skip  int
}

// cursorData is what a cursor carries. Run and Stream bind it: a cursor is
// only valid for the run (and the log stream) it was issued for.
type cursorData struct {
	V      int    `json:"v"`
	Run    string `json:"r"`
	Stream string `json:"s,omitempty"` // "<group>\n<stream>", empty before the log existed
	Token  string `json:"t,omitempty"`
	Skip   int    `json:"k,omitempty"`
}

const cursorVersion = 1

// cursorCodec signs cursors with an HMAC so they stay opaque and cannot be
// edited or moved to another run. The key guards integrity, not secrecy:
// a cursor only ever reads a run the caller may read anyway.
type cursorCodec struct{ key []byte }

func streamKey(group, stream string) string {
	if group == "" && stream == "" {
		return ""
	}
	return group + "\n" + stream
}

func (c cursorCodec) encode(runID, stream string, p position) string {
	body, _ := json.Marshal(cursorData{V: cursorVersion, Run: runID, Stream: stream, Token: p.Token, Skip: p.Skip})
	b := base64.RawURLEncoding.EncodeToString(body)
	return b + "." + base64.RawURLEncoding.EncodeToString(c.mac(b))
}

func (c cursorCodec) mac(b string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(b))
	return m.Sum(nil)[:16]
}

// decode checks a cursor's signature and that it belongs to runID.
func (c cursorCodec) decode(runID, cursor string) (cursorData, error) {
	bad := apierr.Invalid("cursor", "the cursor is not valid; use the nextCursor of a previous response for this run")
	b, sig, ok := strings.Cut(cursor, ".")
	if !ok {
		return cursorData{}, bad
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.mac(b)) {
		return cursorData{}, bad
	}
	body, err := base64.RawURLEncoding.DecodeString(b)
	if err != nil {
		return cursorData{}, bad
	}
	var d cursorData
	if err := json.Unmarshal(body, &d); err != nil || d.V != cursorVersion || d.Skip < 0 || d.Skip > maxEventsPerCall {
		return cursorData{}, bad
	}
	if d.Run != runID {
		return cursorData{}, apierr.Invalid("cursor", "the cursor belongs to another run")
	}
	return d, nil
}
