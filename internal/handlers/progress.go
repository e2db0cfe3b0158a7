package handlers

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/price"
	"github.com/ceforge/ceforge/internal/progress"
	"github.com/ceforge/ceforge/internal/run"
)

// progressHandlers serve a run's live progress, tasks and metrics, and
// relaunch.
type progressHandlers struct {
	runs     *run.Service
	progress *progress.Store
	prices   *price.Table
	now      func() time.Time
}

func (h progressHandlers) register(rt *api.Router) {
	rt.Handle("GET", "/runs/{id}/progress", h.view)
	rt.Handle("GET", "/runs/{id}/tasks", h.tasks)
	rt.Handle("GET", "/runs/{id}/tasks/{taskId}", h.task)
	rt.Handle("GET", "/runs/{id}/metrics", h.metrics)
	rt.Handle("POST", "/runs/{id}/relaunch", h.relaunch)
}

func (h progressHandlers) clock() time.Time {
	if h.now != nil {
		return h.now().UTC()
	}
	return time.Now().UTC()
}

func (h progressHandlers) view(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	rn, err := h.runs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	v, err := h.progress.ViewOf(r.Context(), rn, h.prices, h.clock())
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, v)
}

func (h progressHandlers) tasks(w http.ResponseWriter, r *http.Request) error {
	q, err := ParseQuery(r, "status", "process", "sort", "cursor", "limit")
	if err != nil {
		return err
	}
	var tq progress.TaskQuery
	if tq.Status, err = q.String("status"); err != nil {
		return err
	}
	if tq.Status != "" && !slices.Contains(progress.TaskStatuses, tq.Status) {
		return apierr.BadRequest("invalid_parameter", "status", "status must be one of %v", progress.TaskStatuses)
	}
	if tq.Process, err = q.String("process"); err != nil {
		return err
	}
	if len(tq.Process) > 255 {
		return apierr.BadRequest("invalid_parameter", "process", "process is at most 255 characters")
	}
	if tq.Sort, err = q.String("sort"); err != nil {
		return err
	}
	switch tq.Sort {
	case "", progress.SortStart, progress.SortDuration, progress.SortCost:
	default:
		return apierr.BadRequest("invalid_parameter", "sort", "sort must be start, duration or cost")
	}
	if tq.Cursor, err = q.String("cursor"); err != nil {
		return err
	}
	if tq.Limit, err = q.Limit(); err != nil {
		return err
	}
	rn, err := h.runs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	items, next, err := h.progress.ListTasks(r.Context(), rn.ID, tq)
	if errors.Is(err, progress.ErrBadCursor) {
		return apierr.Invalid("cursor", "the cursor is not one this API returned for this listing")
	}
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, page[progress.Task]{Items: items, NextCursor: next})
}

func (h progressHandlers) task(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	rn, err := h.runs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("taskId"), 10, 64)
	if err != nil || id < 0 {
		return apierr.NotFound("task %q of run %s not found", r.PathValue("taskId"), rn.ID)
	}
	t, ok, err := h.progress.Task(r.Context(), rn.ID, id)
	if err != nil {
		return err
	}
	if !ok {
		return apierr.NotFound("task %d of run %s not found", id, rn.ID)
	}
	return api.WriteJSON(w, http.StatusOK, t)
}

func (h progressHandlers) metrics(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	rn, err := h.runs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	m, err := h.progress.Metrics(r.Context(), rn.ID)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"runId": rn.ID, "metrics": m})
}

func (h progressHandlers) relaunch(w http.ResponseWriter, r *http.Request) error {
	if _, err := ParseQuery(r); err != nil {
		return err
	}
	var req run.RelaunchRequest
	if err := api.Decode(w, r, &req); err != nil {
		return err
	}
	old := r.PathValue("id")
	session := ""
	if req.Resume {
		if _, err := h.runs.Get(r.Context(), old); err != nil {
			return err
		}
		wf, ok, err := h.progress.Workflow(r.Context(), old)
		if err != nil {
			return err
		}
		if ok {
			session = wf.SessionID
		}
		if session == "" {
			snap, ok, err := h.progress.Snapshot(r.Context(), old)
			if err != nil {
				return err
			}
			if ok {
				session = snap.SessionID
			}
		}
	}
	res, created, err := h.runs.Relaunch(r.Context(), old, req, session, api.IdentityFrom(r.Context()), r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/runs/"+res.ID)
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	return api.WriteJSON(w, status, res.Public())
}
