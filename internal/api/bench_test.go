package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkRouter measures the router's own overhead per request: request
// id, identity check, logging, dispatch and a JSON response.
func BenchmarkRouter(b *testing.B) {
	rt := NewRouter(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	rt.Handle("GET", "/runs/{id}", func(w http.ResponseWriter, r *http.Request) error {
		return WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	})
	rt.Handle("GET", "/compute-envs/{id}", func(w http.ResponseWriter, r *http.Request) error { return nil })
	req := httptest.NewRequest("GET", "/runs/abc123", nil)
	req = req.WithContext(WithIdentity(req.Context(), "arn:aws:iam::1:user/u"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// decodeBenchBody is a realistic POST /compute-envs body (~1.5 KB).
const decodeBenchBody = `{"name":"rnaseq-spot","platform":"aws-batch","region":"eu-west-1","workDir":"s3://bucket/work",
"credentialsId":"k2v9d1x7m3q8ze",
"preRunScript":"echo pre\nmodule load x\n","postRunScript":"echo post\n","nextflowConfig":"process.cpus = 2\naws.client.maxConnections = 20\n",
"environment":[{"name":"FOO","value":"bar","head":true,"compute":false},{"name":"BAZ","value":"qux","head":true,"compute":true}],
"labels":{"team":"genomics","cost-center":"42"},
"batch":{"headJobCpus":2,"headJobMemoryMb":4096,"waveEnabled":true,"fusion2Enabled":true,
"forge":{"type":"SPOT","minCpus":0,"maxCpus":256,"instanceTypes":["m6i.xlarge","c6i.2xlarge"],"allocStrategy":"SPOT_PRICE_CAPACITY_OPTIMIZED",
"subnets":["subnet-0123456789abcdef0","subnet-0123456789abcdef1"],"securityGroups":["sg-0123456789abcdef0"],
"allowBuckets":["s3://other"],"ecsConfig":"ECS_ENABLE_GPU_SUPPORT=true\n"}}}`

// BenchmarkDecode measures the strict request decoder on a realistic body.
func BenchmarkDecode(b *testing.B) {
	type env struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		Head    bool   `json:"head"`
		Compute bool   `json:"compute"`
	}
	type forge struct {
		Type           string   `json:"type"`
		MinCpus        int      `json:"minCpus"`
		MaxCpus        int      `json:"maxCpus"`
		InstanceTypes  []string `json:"instanceTypes"`
		AllocStrategy  string   `json:"allocStrategy"`
		Subnets        []string `json:"subnets"`
		SecurityGroups []string `json:"securityGroups"`
		AllowBuckets   []string `json:"allowBuckets"`
		EcsConfig      string   `json:"ecsConfig"`
	}
	type req struct {
		Name           string            `json:"name"`
		Platform       string            `json:"platform"`
		Region         string            `json:"region"`
		WorkDir        string            `json:"workDir"`
		CredentialsID  string            `json:"credentialsId"`
		PreRunScript   string            `json:"preRunScript"`
		PostRunScript  string            `json:"postRunScript"`
		NextflowConfig string            `json:"nextflowConfig"`
		Environment    []env             `json:"environment"`
		Labels         map[string]string `json:"labels"`
		Batch          *struct {
			HeadJobCpus     int    `json:"headJobCpus"`
			HeadJobMemoryMb int    `json:"headJobMemoryMb"`
			WaveEnabled     bool   `json:"waveEnabled"`
			Fusion2Enabled  bool   `json:"fusion2Enabled"`
			Forge           *forge `json:"forge"`
		} `json:"batch"`
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(decodeBenchBody)))
	for b.Loop() {
		r := httptest.NewRequest("POST", "/compute-envs", strings.NewReader(decodeBenchBody))
		r.Header.Set("Content-Type", "application/json")
		var v req
		if err := Decode(httptest.NewRecorder(), r, &v); err != nil {
			b.Fatal(err)
		}
	}
}
