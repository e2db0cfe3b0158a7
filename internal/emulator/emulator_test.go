package emulator

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStartResetStop(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, 0, nil)
	require.NoError(t, err)
	require.NoError(t, s.Reset(ctx))

	res, err := http.Get(s.Endpoint + "/moto-api/config")
	require.NoError(t, err)
	var cfg struct {
		Batch struct {
			UseDocker bool `json:"use_docker"`
		} `json:"batch"`
	}
	require.NoError(t, decodeJSON(res, &cfg))
	require.False(t, cfg.Batch.UseDocker, "batch must run without Docker after a reset")

	s.Stop()
	_, err = http.Get(s.Endpoint + "/moto-api/config")
	require.Error(t, err, "the server must be gone after Stop")
}
