// Package smvault is secret.Vault on AWS Secrets Manager. Its four calls
// are sent by awsclient/signed (the requests the SDK sends, JSON 1.1)
// rather than through the SDK's client, whose operations would cost the
// api function, the only one that writes pipeline secrets, part of its
// 12 MB budget. Values are stored as SecretBinary: the heads decode the
// base64 the API returns for it, so any text survives byte for byte
// (quotes, backslashes, newlines) without parsing JSON in a shell.
package smvault

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/aws/smithy-go"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/awsclient/signed"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/secret"
)

// Caller sends one signed request (signed.Client).
type Caller interface {
	Call(ctx context.Context, req signed.Request, out any) error
}

// Vault is a secret.Vault in one account and region.
type Vault struct{ Client Caller }

// New returns the vault factory of the AWS client factory: Secrets Manager
// in a region, as the control plane or through a member account's role.
func New(f *awsclient.Factory) secret.VaultFactory {
	return func(region string, creds *computeenv.Credentials) secret.Vault {
		var c awsclient.Credentials
		if creds != nil {
			c = awsclient.Credentials{RoleARN: creds.RoleARN, ExternalID: creds.ExternalID}
		}
		return &Vault{Client: signed.New(f.ForRole(region, c))}
	}
}

func (v *Vault) call(ctx context.Context, op string, in, out any) error {
	body, err := jsonBody(in)
	if err != nil {
		return err
	}
	if out == nil {
		out = &struct{}{}
	}
	return v.Client.Call(ctx, signed.Request{Service: "secretsmanager", Target: "secretsmanager." + op, Body: body}, out)
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// Create implements secret.Vault.
func (v *Vault) Create(ctx context.Context, name, description string, value []byte, tags map[string]string, policy string) (string, error) {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type tag struct{ Key, Value string }
	in := struct {
		Name         string
		Description  string
		SecretBinary []byte // base64 in JSON, as the API takes a blob
		Tags         []tag
	}{Name: name, Description: description, SecretBinary: value}
	for _, k := range keys {
		in.Tags = append(in.Tags, tag{k, tags[k]})
	}
	var out struct{ ARN string }
	err := v.call(ctx, "CreateSecret", in, &out)
	if code(err) == "ResourceExistsException" {
		return "", secret.ErrExists
	}
	if err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	if err := v.call(ctx, "PutResourcePolicy", struct{ SecretId, ResourcePolicy string }{out.ARN, policy}, nil); err != nil {
		// A value nobody but the runs may read, or none at all.
		derr := v.Delete(ctx, out.ARN)
		return "", errors.Join(fmt.Errorf("resource policy of %s: %w", name, err), derr)
	}
	return out.ARN, nil
}

// Put implements secret.Vault.
func (v *Vault) Put(ctx context.Context, name string, value []byte) error {
	if err := v.call(ctx, "PutSecretValue", struct {
		SecretId     string
		SecretBinary []byte
	}{name, value}, nil); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return nil
}

// Delete implements secret.Vault.
func (v *Vault) Delete(ctx context.Context, name string) error {
	err := v.call(ctx, "DeleteSecret", struct {
		SecretId                   string
		ForceDeleteWithoutRecovery bool
	}{name, true}, nil)
	if err != nil && code(err) != "ResourceNotFoundException" {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
