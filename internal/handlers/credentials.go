package handlers

import (
	"net/http"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/credential"
)

type credentialHandlers struct{ svc *credential.Service }

func (h credentialHandlers) create(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	var req credential.CreateRequest
	if err := api.Decode(w, r, &req); err != nil {
		return err
	}
	c, err := h.svc.Create(r.Context(), req, api.IdentityFrom(r.Context()))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/credentials/"+c.ID)
	return api.WriteJSON(w, http.StatusCreated, c)
}

func (h credentialHandlers) list(w http.ResponseWriter, r *http.Request) error {
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
	return api.WriteJSON(w, http.StatusOK, page[credential.Credential]{Items: items, NextCursor: next})
}

func (h credentialHandlers) get(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	c, err := h.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, c)
}

func (h credentialHandlers) verify(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	c, err := h.svc.Verify(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, c)
}

func (h credentialHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	if err := h.svc.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
