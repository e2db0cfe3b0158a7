package trace

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/logging"
)

// Nextflow reads one tower token (tower.accessToken, or TOWER_ACCESS_TOKEN
// for a launched run) and hands it to Wave too, with the tower endpoint:
// Wave then checks it against that endpoint, which must be a Seqera
// Platform paired with Wave. A run reporting to ceforge therefore sends
// its Wave requests here (wave.endpoint = <ceforge>/wave): the relay checks
// the token is the run's, removes it and the endpoint, and forwards the
// request to Wave as Nextflow sends it without a token (Wave's anonymous
// access). The status calls carry no token and are forwarded as they are.

// WaveRoutes are the Wave API calls Nextflow makes, relayed.
var WaveRoutes = []Route{
	{http.MethodPost, "/wave/container-token"},
	{http.MethodPost, "/wave/v1alpha2/container"},
	{http.MethodGet, "/wave/v1alpha2/container/{requestId}/status"},
	{http.MethodGet, "/wave/v1alpha1/builds/{buildId}/status"},
}

// WaveRelay forwards heads' Wave requests without their ceforge token.
type WaveRelay struct {
	// Upstream is the Wave service (CEFORGE_WAVE_URL).
	Upstream string
	Client   *http.Client
}

// towerFields are what Nextflow adds to a Wave request from its tower
// settings: they name ceforge, which Wave does not know.
var towerFields = []string{"towerAccessToken", "towerRefreshToken", "towerEndpoint", "towerWorkspaceId"}

var waveIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// registerWave adds the relay routes.
func (rc *Receiver) registerWave(rt *api.Router) {
	rt.Handle(http.MethodPost, "/wave/container-token", rc.waveSubmit("container-token"))
	rt.Handle(http.MethodPost, "/wave/v1alpha2/container", rc.waveSubmit("v1alpha2/container"))
	rt.Handle(http.MethodGet, "/wave/v1alpha2/container/{requestId}/status", rc.waveStatus("requestId", "v1alpha2/container/%s/status"))
	rt.Handle(http.MethodGet, "/wave/v1alpha1/builds/{buildId}/status", rc.waveStatus("buildId", "v1alpha1/builds/%s/status"))
}

func (rc *Receiver) waveSubmit(path string) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		ctx := r.Context()
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"message": "the body is too large"})
			return nil
		}
		var req map[string]json.RawMessage
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "malformed JSON body"})
			return nil
		}
		var token, runID string
		_ = json.Unmarshal(req["towerAccessToken"], &token)
		_ = json.Unmarshal(req["workflowId"], &runID)
		if token == "" || !ids.Valid(runID) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "ceforge relays the Wave requests of its runs only (towerAccessToken and workflowId)"})
			return nil
		}
		if !rc.Throttle.Allow(HashToken(token), rc.now()) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "too many Wave requests for this run; retry shortly"})
			return nil
		}
		c := &call{runID: runID, token: token}
		if err := rc.authorise(ctx, c); err != nil {
			var perr *Error
			if errors.As(err, &perr) {
				writeJSON(w, perr.Status, map[string]string{"message": perr.Message})
				return nil
			}
			return err
		}
		for _, f := range towerFields {
			delete(req, f)
		}
		out, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("encode wave request: %w", err)
		}
		return rc.Wave.forward(ctx, w, http.MethodPost, path, out)
	}
}

func (rc *Receiver) waveStatus(param, format string) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue(param)
		if !waveIDRE.MatchString(id) {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "unknown " + param})
			return nil
		}
		return rc.Wave.forward(r.Context(), w, http.MethodGet, fmt.Sprintf(format, id), nil)
	}
}

// forward sends one request to Wave and copies its answer back.
func (wr *WaveRelay) forward(ctx context.Context, w http.ResponseWriter, method, path string, body []byte) error {
	client := wr.Client
	if client == nil {
		client = &http.Client{Timeout: 20 * time.Second}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(wr.Upstream, "/")+"/"+path, rd)
	if err != nil {
		return fmt.Errorf("wave request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		logging.From(ctx, nil).Warn("wave relay: upstream unreachable", "path", path, "error", err.Error())
		writeJSON(w, http.StatusBadGateway, map[string]string{"message": "Wave did not answer: " + err.Error()})
		return nil
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, MaxBodyBytes))
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"message": "Wave's answer was cut: " + err.Error()})
		return nil
	}
	if ct := res.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(res.StatusCode)
	_, err = w.Write(b)
	return err
}
