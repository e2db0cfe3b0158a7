// Package runtimeapi is a local stand-in of the AWS Lambda Runtime API, the
// HTTP interface a `provided.al2023` bootstrap polls for invocations. It lets
// tests and benchmarks run the real function binaries outside Lambda: start
// one with AWS_LAMBDA_RUNTIME_API pointing here, hand it events, read its
// responses, and time its start-up to the first poll.
package runtimeapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

const prefix = "/2018-06-01/runtime"

// Result is a function's answer to one invocation.
type Result struct {
	RequestID string
	Body      []byte
	Error     bool // posted to /error instead of /response
}

// Server is one stand-in Runtime API for one function process.
type Server struct {
	ln      net.Listener
	srv     *http.Server
	events  chan invocation
	results chan Result

	mu        sync.Mutex
	firstPoll time.Time
	polled    chan struct{}
	initError []byte
	seq       int
}

type invocation struct {
	id      string
	payload []byte
}

// Start serves a stand-in on a free loopback port.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &Server{ln: ln, events: make(chan invocation, 16), results: make(chan Result, 16), polled: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/invocation/next", s.next)
	mux.HandleFunc("POST "+prefix+"/invocation/{id}/response", s.respond(false))
	mux.HandleFunc("POST "+prefix+"/invocation/{id}/error", s.respond(true))
	mux.HandleFunc("POST "+prefix+"/init/error", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.initError = b
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the value for AWS_LAMBDA_RUNTIME_API.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving.
func (s *Server) Close() error { return s.srv.Close() }

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.firstPoll.IsZero() {
		s.firstPoll = time.Now()
		close(s.polled)
	}
	s.mu.Unlock()
	select {
	case inv := <-s.events:
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:ceforge-local")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(inv.payload)
	case <-r.Context().Done():
	}
}

func (s *Server) respond(isErr bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.results <- Result{RequestID: r.PathValue("id"), Body: b, Error: isErr}
		w.WriteHeader(http.StatusAccepted)
	}
}

// WaitFirstPoll waits until the function asks for its first invocation,
// i.e. it finished its init, and returns when that happened.
func (s *Server) WaitFirstPoll(ctx context.Context) (time.Time, error) {
	select {
	case <-s.polled:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.firstPoll, nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.initError != nil {
			return time.Time{}, fmt.Errorf("function init failed: %s", s.initError)
		}
		return time.Time{}, ctx.Err()
	}
}

// Invoke hands the function one event and waits for its result.
func (s *Server) Invoke(ctx context.Context, payload []byte) (Result, error) {
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("req-%d", s.seq)
	s.mu.Unlock()
	select {
	case s.events <- invocation{id: id, payload: payload}:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	select {
	case res := <-s.results:
		if res.RequestID != id {
			return res, errors.New("response for another request: " + res.RequestID)
		}
		return res, nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}
