package handlers

import (
	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/credential"
)

// registerCredentials serves /credentials: member accounts' roles, with
// the External ID ceforge generates.
func registerCredentials(rt *api.Router, svc *credential.Service) {
	rt.Handle("POST", "/credentials", create("/credentials", svc.Create, func(c *credential.Credential) string { return c.ID }))
	rt.Handle("GET", "/credentials", listed(svc.List))
	rt.Handle("GET", "/credentials/{id}", byID(svc.Get))
	rt.Handle("DELETE", "/credentials/{id}", deleted(svc.Delete))
	rt.Handle("POST", "/credentials/{id}/verify", byID(svc.Verify))
}
