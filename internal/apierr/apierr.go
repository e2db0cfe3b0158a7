// Package apierr is the error type every layer returns when the caller, not
// the system, is at fault: an HTTP status, a stable machine code, a human
// message and, for bad input, the field at fault.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a caller-facing error.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Invalid reports a bad value in a request field (400 invalid_field).
func Invalid(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_field", Field: field, Message: fmt.Sprintf(format, args...)}
}

// Missing reports a required field that was absent (400 missing_field).
func Missing(field string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "missing_field", Field: field, Message: field + " is required"}
}

// BadRequest reports a malformed request (400) with a specific code.
func BadRequest(code, field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports a missing resource (404 not_found).
func NotFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf(format, args...)}
}

// Conflict reports a request at odds with the resource's state (409).
func Conflict(code, field, format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Unprocessable reports a well-formed request the account cannot satisfy,
// found while validating against AWS (422), e.g. a subnet that does not exist.
func Unprocessable(code, field, format string, args ...any) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotImplemented reports a capability that does not exist yet (501).
func NotImplemented(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotImplemented, Code: "not_implemented", Message: fmt.Sprintf(format, args...)}
}

// Unauthorized reports a request without a caller identity (401).
func Unauthorized(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: fmt.Sprintf(format, args...)}
}
