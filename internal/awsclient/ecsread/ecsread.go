// Package ecsread answers which EC2 instance an ECS container instance is:
// the host an AWS Batch job runs on (Batch reports the job's container
// instance, ECS knows its instance), which a studio on a Batch compute
// environment is reached through. One read-only call, ECS
// DescribeContainerInstances (JSON 1.1), sent with awsclient/signed:
// the SDK's ECS client would add its whole model to the api function for it.
package ecsread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ceforge/ceforge/internal/awsclient/signed"
)

// Reader reads with one configuration (account, region, credentials).
type Reader struct{ c *signed.Client }

// New returns a Reader acting with cfg.
func New(cfg aws.Config) *Reader { return &Reader{c: signed.New(cfg)} }

// ClusterOf returns the cluster a container instance ARN names
// (arn:…:container-instance/<cluster>/<id>); false for the old ARN format
// without a cluster, or anything that is not a container instance ARN.
func ClusterOf(containerInstanceARN string) (string, bool) {
	if !strings.HasPrefix(containerInstanceARN, "arn:") {
		return "", false
	}
	_, res, ok := strings.Cut(containerInstanceARN, ":container-instance/")
	if !ok {
		return "", false
	}
	cluster, id, ok := strings.Cut(res, "/")
	if !ok || cluster == "" || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return cluster, true
}

// EC2InstanceOf returns the EC2 instance id of a container instance; ""
// when ECS no longer knows it (deregistered: the host is gone).
func (r *Reader) EC2InstanceOf(ctx context.Context, containerInstanceARN string) (string, error) {
	cluster, ok := ClusterOf(containerInstanceARN)
	if !ok {
		return "", fmt.Errorf("%q is not a container instance ARN that names its cluster", containerInstanceARN)
	}
	body, err := json.Marshal(map[string]any{"cluster": cluster, "containerInstances": []string{containerInstanceARN}})
	if err != nil {
		return "", err
	}
	var out struct {
		ContainerInstances []struct {
			ContainerInstanceArn string `json:"containerInstanceArn"`
			EC2InstanceID        string `json:"ec2InstanceId"`
		} `json:"containerInstances"`
	}
	err = r.c.Call(ctx, signed.Request{
		Service: "ecs", Method: http.MethodPost, Path: "/",
		Target: "AmazonEC2ContainerServiceV20141113.DescribeContainerInstances", Body: body,
	}, &out)
	var ae *signed.APIError
	if errors.As(err, &ae) && ae.Code == "ClusterNotFoundException" {
		return "", nil // the cluster is gone, and its hosts with it
	}
	if err != nil {
		return "", fmt.Errorf("describe container instance %s: %w", containerInstanceARN, err)
	}
	for _, ci := range out.ContainerInstances {
		if ci.ContainerInstanceArn == containerInstanceARN || len(out.ContainerInstances) == 1 {
			return ci.EC2InstanceID, nil
		}
	}
	return "", nil // reported as a failure (MISSING): no such container instance any more
}
