package cli

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// spinner shows one changing status line on a terminal; off a terminal it
// does nothing (callers print changes as lines instead).
type spinner struct {
	on      bool
	w       io.Writer
	mu      sync.Mutex
	text    string
	stopped bool
	done    chan struct{}
	once    sync.Once
}

var spinFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func newSpinner(w io.Writer, on bool) *spinner {
	s := &spinner{on: on, w: w, done: make(chan struct{})}
	if on {
		go s.loop()
	}
	return s
}

func (s *spinner) loop() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if !s.stopped {
			fmt.Fprintf(s.w, "\r%s %s\x1b[K", spinFrames[i%len(spinFrames)], s.text)
		}
		s.mu.Unlock()
	}
}

func (s *spinner) set(text string) {
	s.mu.Lock()
	s.text = text
	s.mu.Unlock()
}

// stop ends the spinner and clears its line.
func (s *spinner) stop() {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.stopped = true
		if s.on {
			fmt.Fprint(s.w, "\r\x1b[K")
		}
	})
}
