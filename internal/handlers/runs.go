package handlers

import (
	"net/http"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/run"
)

type runHandlers struct{ svc *run.Service }

func (h runHandlers) launch(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	var req run.LaunchRequest
	if err := api.Decode(w, r, &req); err != nil {
		return err
	}
	res, created, err := h.svc.Launch(r.Context(), req, api.IdentityFrom(r.Context()), r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/runs/"+res.ID)
	status := http.StatusCreated
	if !created {
		status = http.StatusOK // replay of an Idempotency-Key
	}
	return api.WriteJSON(w, status, res.Public())
}

func (h runHandlers) list(w http.ResponseWriter, r *http.Request) error {
	q, err := ParseQuery(r, "computeEnvId", "status", "cursor", "limit")
	if err != nil {
		return err
	}
	var lq run.ListQuery
	lq.ComputeEnvID, _ = q.String("computeEnvId")
	if lq.ComputeEnvID != "" && !ids.Valid(lq.ComputeEnvID) {
		return apierr.BadRequest("invalid_parameter", "computeEnvId", "computeEnvId is not a compute environment id")
	}
	lq.Status, _ = q.String("status")
	if lq.Cursor, err = q.String("cursor"); err != nil {
		return err
	}
	if lq.Limit, err = q.Limit(); err != nil {
		return err
	}
	items, next, err := h.svc.List(r.Context(), lq)
	if err != nil {
		return err
	}
	for i := range items {
		items[i] = *items[i].Public()
	}
	return api.WriteJSON(w, http.StatusOK, page[run.Run]{Items: items, NextCursor: next})
}

func (h runHandlers) get(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	res, err := h.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	connect := h.svc.Connect(r.Context(), res) // records a Batch studio's host on res first
	return api.WriteJSON(w, http.StatusOK, runView{Run: res.Public(), Connect: connect})
}

// runView is a run as GET /runs/{id} shows it: the record, plus how to
// reach it when it is a running studio.
type runView struct {
	*run.Run
	Connect *run.Connect `json:"connect,omitempty"`
}

func (h runHandlers) cancel(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	res, err := h.svc.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusAccepted, res.Public())
}
