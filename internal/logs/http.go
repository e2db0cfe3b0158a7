package logs

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/handlers"
)

// Routes registers the log routes on rt.
func (s *Service) Routes(rt *api.Router) {
	rt.Handle("GET", "/runs/{id}/logs", s.handleLogs)
	rt.Handle("GET", "/runs/{id}/logs/download", s.handleDownload)
}

func (s *Service) handleLogs(w http.ResponseWriter, r *http.Request) error {
	q, err := handlers.ParseQuery(r, "cursor", "limit", "follow")
	if err != nil {
		return err
	}
	cursor, err := q.String("cursor")
	if err != nil {
		return err
	}
	follow, err := q.Bool("follow")
	if err != nil {
		return err
	}
	limitText, _ := q.String("limit")
	if follow {
		if limitText != "" {
			return apierr.BadRequest("invalid_parameter", "limit", "limit applies to pages; follow mode sends lines as they arrive")
		}
		if cursor == "" {
			// An EventSource reconnecting on its own sends the last id it saw.
			cursor = r.Header.Get("Last-Event-ID")
		}
		if _, inLambda := lambdacontext.FromContext(r.Context()); inLambda && !Streaming(r.Context()) {
			// The buffered API function cannot stream: only the logs
			// function (Function URL, response streaming) follows.
			where := "the logs function URL"
			if s.opts.FollowURL != "" {
				where = strings.TrimSuffix(s.opts.FollowURL, "/") + r.URL.Path + "?follow=true"
			}
			return apierr.BadRequest("invalid_parameter", "follow",
				"follow mode streams, which this endpoint cannot: sign the same request to %s", where)
		}
		return s.follow(w, r, r.PathValue("id"), cursor)
	}
	limit := DefaultPageLimit
	if limitText != "" {
		n, err := strconv.Atoi(limitText)
		if err != nil || n < 1 || n > MaxPageLimit {
			return apierr.BadRequest("invalid_parameter", "limit", "limit must be an integer from 1 to %d", MaxPageLimit)
		}
		limit = n
	}
	p, err := s.Page(r.Context(), r.PathValue("id"), cursor, limit)
	if errors.Is(err, errThrottled) {
		w.Header().Set("Retry-After", "2")
		return &apierr.Error{Status: http.StatusServiceUnavailable, Code: "throttled",
			Message: "CloudWatch Logs is throttling reads of this account; retry in a few seconds"}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return api.WriteJSON(w, http.StatusOK, p)
}

func (s *Service) handleDownload(w http.ResponseWriter, r *http.Request) error {
	if _, err := handlers.ParseQuery(r); err != nil {
		return err
	}
	u, err := s.DownloadURL(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u, http.StatusTemporaryRedirect)
	return nil
}

// errorCode returns an AWS error's code, or its HTTP status as text when the
// service sent no code (HeadObject answers a bare 404/403).
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() != "" {
		return ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return strconv.Itoa(re.HTTPStatusCode())
	}
	return ""
}
