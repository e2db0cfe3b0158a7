package handlers

import (
	"context"
	"net/http"

	"github.com/ceforge/ceforge/internal/api"
)

// The shapes most resource routes share, so each resource's handlers file
// holds only what is its own (creation bodies, extra parameters).

// create decodes a Req body (no query parameters) and answers 201 with
// what fn made, its Location /<collection>/<id>.
func create[Req, T any](collection string, fn func(context.Context, Req, string) (T, error), id func(T) string) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := ParseQuery(r); err != nil {
			return err
		}
		var req Req
		if err := api.Decode(w, r, &req); err != nil {
			return err
		}
		v, err := fn(r.Context(), req, api.IdentityFrom(r.Context()))
		if err != nil {
			return err
		}
		w.Header().Set("Location", collection+"/"+id(v))
		return api.WriteJSON(w, http.StatusCreated, v)
	}
}

// listed answers a page of a collection read with cursor and limit (its
// only query parameters).
func listed[T any](fn func(context.Context, string, int) ([]T, string, error)) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		q, err := ParseQuery(r, "cursor", "limit")
		if err != nil {
			return err
		}
		cursor, _ := q.String("cursor")
		limit, err := q.Limit()
		if err != nil {
			return err
		}
		items, next, err := fn(r.Context(), cursor, limit)
		if err != nil {
			return err
		}
		return api.WriteJSON(w, http.StatusOK, page[T]{Items: items, NextCursor: next})
	}
}

// byID answers 200 with what fn returns for the path's id (no query
// parameters): a read, or an action on the resource.
func byID[T any](fn func(context.Context, string) (T, error)) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := ParseQuery(r); err != nil {
			return err
		}
		v, err := fn(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return api.WriteJSON(w, http.StatusOK, v)
	}
}

// deleted answers 204 once fn deleted the path's id (no query parameters).
func deleted(fn func(context.Context, string) error) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := ParseQuery(r); err != nil {
			return err
		}
		if err := fn(r.Context(), r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
