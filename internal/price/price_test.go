package price

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaultTableIsDatedAndSourced(t *testing.T) {
	require.Regexp(t, `^\d{4}-\d{2}-\d{2}$`, Default.Date)
	require.Contains(t, Default.Source, "aws.amazon.com")
	require.Equal(t, "USD", Default.Currency)
	// Every family and instance ceforge's defaults name is priced.
	for _, typ := range []string{"m6i.xlarge", "m6i.2xlarge", "c6i.large", "r6i.4xlarge", "m7g.large", "c7g.xlarge", "g4dn.xlarge", "g5.xlarge"} {
		_, ok := Default.Instance("us-east-1", typ)
		require.True(t, ok, typ)
	}
}

func TestInstanceScalesBySizeAndRegion(t *testing.T) {
	tests := []struct {
		region, typ   string
		vcpus, memGiB float64
		usd           float64
		ok            bool
	}{
		{"us-east-1", "m6i.large", 2, 8, 0.096, true},
		{"us-east-1", "m6i.xlarge", 4, 16, 0.192, true},
		{"us-east-1", "m6i.8xlarge", 32, 128, 1.536, true},
		{"us-east-1", "m6i.medium", 1, 4, 0.048, true},
		{"eu-west-1", "m6i.large", 2, 8, 0.096 * 1.115, true},
		{"us-east-1", "g5.xlarge", 4, 16, 1.006, true},
		{"us-east-1", "m6i.metal", 0, 0, 0, false},
		{"us-east-1", "x9z.large", 0, 0, 0, false},
		{"mars-north-1", "m6i.large", 0, 0, 0, false},
		{"us-east-1", "m6i", 0, 0, 0, false},
	}
	for _, tt := range tests {
		in, ok := Default.Instance(tt.region, tt.typ)
		require.Equal(t, tt.ok, ok, tt.typ)
		if !ok {
			continue
		}
		require.Equal(t, tt.vcpus, in.Vcpus, tt.typ)
		require.Equal(t, tt.memGiB, in.MemoryGiB, tt.typ)
		require.InDelta(t, tt.usd, in.USDPerHour, 1e-9, tt.typ)
	}
}

func TestTaskCostIsShareTimesRealtime(t *testing.T) {
	// 1 cpu and 2 GiB of an m6i.xlarge (4 cpus, 16 GiB) for 2 h: the cpu
	// share (1/4) is the larger.
	c, ok := Default.TaskCost("us-east-1", "m6i.xlarge", false, Usage{Cpus: 1, MemoryBytes: 2 << 30, Realtime: 2 * time.Hour})
	require.True(t, ok)
	require.InDelta(t, 0.192*0.25*2, c, 1e-9)
	// Memory-bound: 1 cpu, 12 GiB -> 12/16 of the instance.
	c, _ = Default.TaskCost("us-east-1", "m6i.xlarge", false, Usage{Cpus: 1, MemoryBytes: 12 << 30, Realtime: time.Hour})
	require.InDelta(t, 0.192*0.75, c, 1e-9)
	// Never more than the whole instance; Spot at the table's factor.
	c, _ = Default.TaskCost("us-east-1", "m6i.xlarge", true, Usage{Cpus: 64, Realtime: time.Hour})
	require.InDelta(t, 0.192*Default.SpotFactor, c, 1e-9)
	// Unknown cpus count as one.
	c, _ = Default.TaskCost("us-east-1", "m6i.large", false, Usage{Realtime: time.Hour})
	require.InDelta(t, 0.048, c, 1e-9)
	_, ok = Default.TaskCost("us-east-1", "unknown.large", false, Usage{Realtime: time.Hour})
	require.False(t, ok)
}

func TestFargateCost(t *testing.T) {
	c, ok := Default.FargateCost("us-east-1", 2, 4096, false, time.Hour)
	require.True(t, ok)
	require.InDelta(t, 2*0.04048+4*0.004445, c, 1e-9)
	_, ok = Default.FargateCost("nowhere-1", 2, 4096, false, time.Hour)
	require.False(t, ok)
}

func TestRegionOfZone(t *testing.T) {
	for zone, want := range map[string]string{
		"us-east-1a": "us-east-1", "eu-west-1b": "eu-west-1", "us-gov-west-1a": "us-gov-west-1",
		"us-east-1-bos-1a": "us-east-1", "use1-az1": "", "": "",
	} {
		require.Equal(t, want, RegionOfZone(zone), zone)
	}
}

func TestParseRejectsIncompleteTables(t *testing.T) {
	for _, body := range []string{
		`{}`,
		`{"date":"yesterday","source":"x","currency":"USD","spotFactor":0.3,"regions":{"us-east-1":1}}`,
		`{"date":"2026-01-01","source":"x","currency":"EUR","spotFactor":0.3,"regions":{"us-east-1":1}}`,
		`{"date":"2026-01-01","source":"x","currency":"USD","spotFactor":0.3,"regions":{"us-east-1":1},"families":{"m6i":{"base":"huge","vcpus":2,"memoryGiB":8,"usdPerHour":1}}}`,
	} {
		_, err := Parse([]byte(body))
		require.Error(t, err, body)
	}
	require.False(t, math.IsNaN(Default.SpotFactor))
}
