package handlers

import (
	"net/http"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/secret"
)

// registerSecrets serves /secrets: pipeline secrets, whose values go in
// and never come out.
func registerSecrets(rt *api.Router, svc *secret.Service) {
	h := secretHandlers{svc: svc}
	rt.Handle("POST", "/secrets", create("/secrets", svc.Create, func(s *secret.Secret) string { return s.ID }))
	rt.Handle("GET", "/secrets", listed(svc.List))
	rt.Handle("GET", "/secrets/{id}", byID(svc.Get))
	rt.Handle("PUT", "/secrets/{id}", h.rotate)
	rt.Handle("DELETE", "/secrets/{id}", deleted(svc.Delete))
}

type secretHandlers struct{ svc *secret.Service }

func (h secretHandlers) rotate(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	var req secret.RotateRequest
	if err := api.Decode(w, r, &req); err != nil {
		return err
	}
	s, err := h.svc.Rotate(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, s)
}
