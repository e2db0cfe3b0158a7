// Package fsread reads EFS and FSx file systems for compute-environment
// validation (awsclient.FileSystemReader): EFS DescribeFileSystems and
// DescribeMountTargets (REST-JSON), FSx DescribeFileSystems (JSON 1.1),
// sent with awsclient/signed. The SDK's EFS and FSx clients would add 0.4
// MB to the api function, past its 12 MB budget, for these three
// read-only calls; the forge (forge/steps), which creates file systems,
// uses the SDK clients.
package fsread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/awsclient/signed"
)

// Reader reads with one configuration (account, region, credentials).
type Reader struct {
	client *signed.Client
	// pageSize bounds FSx pages (0: the service's default); tests page.
	pageSize int
}

// New returns a Reader acting with cfg.
func New(cfg aws.Config) awsclient.FileSystemReader { return newReader(cfg) }

func newReader(cfg aws.Config) *Reader { return &Reader{client: signed.New(cfg)} }

// call sends one REST-JSON (target empty) or JSON 1.1 request.
func (r *Reader) call(ctx context.Context, service, method, path string, query url.Values, target string, body []byte, out any) error {
	return r.client.Call(ctx, signed.Request{Service: service, Method: method, Path: path, Query: query, Target: target, Body: body}, out)
}

// EFS returns the file system and its mount targets, nil when it does not exist.
func (r *Reader) EFS(ctx context.Context, id string) (*awsclient.EFSFileSystem, error) {
	var fss struct {
		FileSystems []struct{ FileSystemId, LifeCycleState string }
	}
	err := r.call(ctx, "elasticfilesystem", http.MethodGet, "/2015-02-01/file-systems", url.Values{"FileSystemId": {id}}, "", nil, &fss)
	var ae *signed.APIError
	if errors.As(err, &ae) && ae.Code == "FileSystemNotFound" {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe EFS %s: %w", id, err)
	}
	if len(fss.FileSystems) == 0 {
		return nil, nil
	}
	fs := &awsclient.EFSFileSystem{ID: id, State: fss.FileSystems[0].LifeCycleState}
	q := url.Values{"FileSystemId": {id}}
	for {
		var mts struct {
			MountTargets []struct{ SubnetId, AvailabilityZoneName, VpcId, LifeCycleState string }
			NextMarker   string
		}
		if err := r.call(ctx, "elasticfilesystem", http.MethodGet, "/2015-02-01/mount-targets", q, "", nil, &mts); err != nil {
			return nil, fmt.Errorf("describe mount targets of EFS %s: %w", id, err)
		}
		for _, mt := range mts.MountTargets {
			fs.MountTargets = append(fs.MountTargets, awsclient.EFSMountTarget{
				SubnetID: mt.SubnetId, AvailabilityZone: mt.AvailabilityZoneName, VpcID: mt.VpcId, State: mt.LifeCycleState,
			})
		}
		if mts.NextMarker == "" {
			return fs, nil
		}
		q.Set("Marker", mts.NextMarker)
	}
}

// FSxByDNSName pages through the region's FSx file systems for the one
// with that DNS name, nil when none.
func (r *Reader) FSxByDNSName(ctx context.Context, dns string) (*awsclient.FSxFileSystem, error) {
	req := map[string]any{}
	if r.pageSize > 0 {
		req["MaxResults"] = r.pageSize
	}
	for {
		body, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		var out struct {
			FileSystems []struct{ FileSystemId, FileSystemType, Lifecycle, VpcId, DNSName string }
			NextToken   string
		}
		if err := r.call(ctx, "fsx", http.MethodPost, "/", nil, "AWSSimbaAPIService_v20180301.DescribeFileSystems", body, &out); err != nil {
			return nil, fmt.Errorf("describe FSx file systems: %w", err)
		}
		for _, fs := range out.FileSystems {
			if fs.DNSName == dns {
				return &awsclient.FSxFileSystem{ID: fs.FileSystemId, Type: fs.FileSystemType, Lifecycle: fs.Lifecycle, VpcID: fs.VpcId}, nil
			}
		}
		if out.NextToken == "" {
			return nil, nil
		}
		req["NextToken"] = out.NextToken
	}
}
