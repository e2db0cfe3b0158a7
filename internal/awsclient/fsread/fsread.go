// Package fsread reads EFS and FSx file systems for compute-environment
// validation (awsclient.FileSystemReader). It is its own package so that
// only the functions that validate compute environments link the EFS and
// FSx clients.
package fsread

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	efstypes "github.com/aws/aws-sdk-go-v2/service/efs/types"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	"github.com/aws/smithy-go"

	"github.com/ceforge/ceforge/internal/awsclient"
)

// Reader reads with one EFS and one FSx client.
type Reader struct {
	efs *efs.Client
	fsx *fsx.Client
}

// New returns a Reader acting with cfg.
func New(cfg aws.Config) awsclient.FileSystemReader {
	return &Reader{efs: efs.NewFromConfig(cfg), fsx: fsx.NewFromConfig(cfg)}
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// EFS returns the file system and its mount targets, nil when it does not exist.
func (r *Reader) EFS(ctx context.Context, id string) (*awsclient.EFSFileSystem, error) {
	out, err := r.efs.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{FileSystemId: aws.String(id)})
	if code(err) == "FileSystemNotFound" {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe EFS %s: %w", id, err)
	}
	if len(out.FileSystems) == 0 {
		return nil, nil
	}
	fs := &awsclient.EFSFileSystem{ID: id, State: string(out.FileSystems[0].LifeCycleState)}
	in := &efs.DescribeMountTargetsInput{FileSystemId: aws.String(id)}
	for {
		mts, err := r.efs.DescribeMountTargets(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("describe mount targets of EFS %s: %w", id, err)
		}
		for _, mt := range mts.MountTargets {
			fs.MountTargets = append(fs.MountTargets, mountTarget(mt))
		}
		if aws.ToString(mts.NextMarker) == "" {
			return fs, nil
		}
		in.Marker = mts.NextMarker
	}
}

func mountTarget(mt efstypes.MountTargetDescription) awsclient.EFSMountTarget {
	return awsclient.EFSMountTarget{
		SubnetID: aws.ToString(mt.SubnetId), AvailabilityZone: aws.ToString(mt.AvailabilityZoneName),
		VpcID: aws.ToString(mt.VpcId), State: string(mt.LifeCycleState),
	}
}

// FSxByDNSName pages through the region's FSx file systems for the one
// with that DNS name, nil when none.
func (r *Reader) FSxByDNSName(ctx context.Context, dns string) (*awsclient.FSxFileSystem, error) {
	in := &fsx.DescribeFileSystemsInput{}
	for {
		out, err := r.fsx.DescribeFileSystems(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("describe FSx file systems: %w", err)
		}
		for _, fs := range out.FileSystems {
			if aws.ToString(fs.DNSName) == dns {
				return &awsclient.FSxFileSystem{ID: aws.ToString(fs.FileSystemId), Type: string(fs.FileSystemType),
					Lifecycle: string(fs.Lifecycle), VpcID: aws.ToString(fs.VpcId)}, nil
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return nil, nil
		}
		in.NextToken = out.NextToken
	}
}
