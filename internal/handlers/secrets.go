package handlers

import (
	"net/http"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/secret"
)

type secretHandlers struct{ svc *secret.Service }

func (h secretHandlers) create(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	var req secret.CreateRequest
	if err := api.Decode(w, r, &req); err != nil {
		return err
	}
	s, err := h.svc.Create(r.Context(), req, api.IdentityFrom(r.Context()))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/secrets/"+s.ID)
	return api.WriteJSON(w, http.StatusCreated, s)
}

func (h secretHandlers) list(w http.ResponseWriter, r *http.Request) error {
	q, err := ParseQuery(r, "cursor", "limit")
	if err != nil {
		return err
	}
	cursor, _ := q.String("cursor")
	limit, err := q.Limit()
	if err != nil {
		return err
	}
	items, next, err := h.svc.List(r.Context(), cursor, limit)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, page[secret.Secret]{Items: items, NextCursor: next})
}

func (h secretHandlers) get(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	s, err := h.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, s)
}

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

func (h secretHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	if err := h.svc.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
