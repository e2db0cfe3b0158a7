package handlers

import (
	"net/http"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/computeenv"
)

type computeEnvHandlers struct{ svc *computeenv.Service }

type dryRunResponse struct {
	ComputeEnv *computeenv.ComputeEnv `json:"computeEnv"`
	Plan       *computeenv.Plan       `json:"plan"`
}

func (h computeEnvHandlers) create(w http.ResponseWriter, r *http.Request) error {
	q, err := ParseQuery(r, "dryRun")
	if err != nil {
		return err
	}
	dryRun, err := q.Bool("dryRun")
	if err != nil {
		return err
	}
	var req computeenv.CreateRequest
	if err := api.Decode(w, r, &req); err != nil {
		return err
	}
	ce, plan, err := h.svc.Create(r.Context(), req, api.IdentityFrom(r.Context()), dryRun)
	if err != nil {
		return err
	}
	if dryRun {
		return api.WriteJSON(w, http.StatusOK, dryRunResponse{ComputeEnv: ce, Plan: plan})
	}
	w.Header().Set("Location", "/compute-envs/"+ce.ID)
	return api.WriteJSON(w, http.StatusCreated, ce)
}

func (h computeEnvHandlers) list(w http.ResponseWriter, r *http.Request) error {
	q, err := ParseQuery(r, "status", "cursor", "limit")
	if err != nil {
		return err
	}
	status, _ := q.String("status")
	cursor, err := q.String("cursor")
	if err != nil {
		return err
	}
	limit, err := q.Limit()
	if err != nil {
		return err
	}
	items, next, err := h.svc.List(r.Context(), status, cursor, limit)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, page[computeenv.ComputeEnv]{Items: items, NextCursor: next})
}

func (h computeEnvHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	q, err := ParseQuery(r, "force")
	if err != nil {
		return err
	}
	force, err := q.Bool("force")
	if err != nil {
		return err
	}
	ce, err := h.svc.Delete(r.Context(), r.PathValue("id"), force)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusAccepted, ce)
}
