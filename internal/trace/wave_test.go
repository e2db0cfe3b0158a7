package trace_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/trace"
)

// waveStub records what reaches "Wave".
type waveStub struct {
	mu   sync.Mutex
	seen []*http.Request
	body []map[string]any
}

func (s *waveStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	s.mu.Lock()
	s.seen, s.body = append(s.seen, r), append(s.body, m)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1alpha2/container":
		_, _ = w.Write([]byte(`{"requestId":"r-1","containerToken":"ct","targetImage":"wave.seqera.io/wt/ct/library/ubuntu:22.04","cached":true}`))
	case "/v1alpha1/builds/bd-9/status":
		_, _ = w.Write([]byte(`{"id":"bd-9","status":"COMPLETED","succeeded":true}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"not found"}`))
	}
}

// Wave requests of a reporting run go through ceforge, which keeps the
// run's token (and the tower endpoint) from Wave.
func TestWaveRelay(t *testing.T) {
	stub := &waveStub{}
	upstream := httptest.NewServer(stub)
	defer upstream.Close()
	f := newFixture(t, func(c *config.Config) { c.WaveURL = upstream.URL })
	r, token := f.launch(t, nil)
	v := lines[1]
	submit := map[string]any{
		"containerImage": "ubuntu:22.04", "containerPlatform": "linux/amd64", "fingerprint": "abc",
		"towerAccessToken": token, "towerRefreshToken": nil, "towerEndpoint": traceURL, "towerWorkspaceId": nil,
		"workflowId": r.ID, "freeze": false,
	}
	res := f.Do(t, http.MethodPost, "/wave/v1alpha2/container", submit)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	require.JSONEq(t, `{"requestId":"r-1","containerToken":"ct","targetImage":"wave.seqera.io/wt/ct/library/ubuntu:22.04","cached":true}`, string(res.Body))
	require.Len(t, stub.body, 1)
	got := stub.body[0]
	for _, k := range []string{"towerAccessToken", "towerRefreshToken", "towerEndpoint", "towerWorkspaceId"} {
		require.NotContains(t, got, k, "Wave never sees ceforge's token or endpoint")
	}
	require.Equal(t, "ubuntu:22.04", got["containerImage"])
	require.Equal(t, r.ID, got["workflowId"])

	// Only the run's own token gets relayed.
	other, _ := f.launch(t, nil)
	submit["workflowId"] = other.ID
	require.Equal(t, http.StatusUnauthorized, f.Do(t, http.MethodPost, "/wave/v1alpha2/container", submit).Status)
	submit["workflowId"], submit["towerAccessToken"] = r.ID, trace.NewToken()
	require.Equal(t, http.StatusUnauthorized, f.Do(t, http.MethodPost, "/wave/container-token", submit).Status)
	delete(submit, "towerAccessToken")
	require.Equal(t, http.StatusUnauthorized, f.Do(t, http.MethodPost, "/wave/v1alpha2/container", submit).Status)
	require.Len(t, stub.body, 1, "refused requests never reach Wave")

	// Status calls are forwarded as they are; odd ids are not.
	res = f.Do(t, http.MethodGet, "/wave/v1alpha1/builds/bd-9/status", nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Contains(t, string(res.Body), `"succeeded":true`)
	require.Equal(t, http.StatusNotFound, f.Do(t, http.MethodGet, "/wave/v1alpha2/container/r-404/status", nil).Status)
	require.Equal(t, http.StatusNotFound, f.Do(t, http.MethodGet, "/wave/v1alpha1/builds/a.b/status", nil).Status)

	// Fusion's licence is Seqera's to give: ceforge has no such route.
	res = f.call(t, v, http.MethodPost, "/license/token/", token, map[string]any{"product": "fusion", "version": "2.4"})
	require.Equal(t, http.StatusNotFound, res.Status)
}
