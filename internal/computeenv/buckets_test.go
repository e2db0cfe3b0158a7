package computeenv

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apierr"
)

func TestCheckBucket(t *testing.T) {
	allowed := []string{"ceforge-*", "genomics-ref", "lab-*-work"}
	for _, ok := range []string{"s3://ceforge-work/x", "s3://genomics-ref", "s3://lab-a-work/w", "/mnt/efs/work", ""} {
		require.NoError(t, CheckBucket("workDir", ok, allowed), ok)
	}
	for _, bad := range []string{"s3://other/x", "s3://genomics-ref2/x", "s3://ceforge/x", "s3://lab-a-work2"} {
		err := CheckBucket("cloud.allowBuckets[0]", bad, allowed)
		e, ok := apierr.As(err)
		require.True(t, ok, bad)
		require.Equal(t, 400, e.Status)
		require.Equal(t, "cloud.allowBuckets[0]", e.Field)
		require.Contains(t, e.Message, "not one this deployment allows")
	}
	require.NoError(t, CheckBucket("workDir", "s3://anything", nil), "no list: no restriction")
}
