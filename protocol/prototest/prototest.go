// Package prototest holds small helpers for tcauth's tests. It imports
// nothing of tcauth, so the tests of any package (protocol, sidecar,
// controlplane, the CLI) can use it without bending the layering.
package prototest

import (
	"bytes"
	"strings"
	"sync"
)

// SyncBuffer is a bytes.Buffer that a logger's goroutines may write while
// a test reads it: tests hand it to slog handlers and child processes and
// poll String for the lines they expect.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Count is how many times sub occurs in what was written so far.
func (s *SyncBuffer) Count(sub string) int { return strings.Count(s.String(), sub) }
