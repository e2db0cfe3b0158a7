package computeenv

import (
	"fmt"
	"path"
	"strings"

	"github.com/ceforge/ceforge/internal/apierr"
)

// CheckBucket refuses an s3:// URI whose bucket matches none of allowed
// (bucket names, '*' a wildcard): the deployment's allowedBuckets, the
// only buckets the permissions boundary lets forged roles reach and the
// functions list, so the API refuses what IAM would deny later. Non-S3
// URIs (shared file system work dirs) and an empty allowed list pass.
func CheckBucket(field, uri string, allowed []string) error {
	if len(allowed) == 0 || !strings.HasPrefix(uri, "s3://") {
		return nil
	}
	bucket, _, err := ParseS3URI(field, uri)
	if err != nil {
		return err
	}
	for _, pattern := range allowed {
		if ok, _ := path.Match(pattern, bucket); ok {
			return nil
		}
	}
	return apierr.Invalid(field, "bucket %q is not one this deployment allows (%s): ceforge's roles can reach no other bucket", bucket, strings.Join(allowed, ", "))
}

// CheckBuckets applies CheckBucket to every bucket a create request names:
// the work directory and the platform's allowBuckets.
func (r *CreateRequest) CheckBuckets(allowed []string) error {
	if err := CheckBucket("workDir", r.WorkDir, allowed); err != nil {
		return err
	}
	var extra []string
	prefix := ""
	switch {
	case r.Batch != nil && r.Batch.Forge != nil:
		extra, prefix = r.Batch.Forge.AllowBuckets, "batch.forge.allowBuckets"
	case r.Cloud != nil:
		extra, prefix = r.Cloud.AllowBuckets, "cloud.allowBuckets"
	}
	for i, u := range extra {
		if err := CheckBucket(fmt.Sprintf("%s[%d]", prefix, i), u, allowed); err != nil {
			return err
		}
	}
	return nil
}
