// Package notes is the example service that runs behind `tcauth sidecar`:
// a small notes store with GET, PUT and DELETE on /notes/<name>. It has no
// auth code of its own. It believes the X-Taskcluster-* identity headers
// because only the sidecar can reach it (it listens on loopback) and the
// sidecar strips any such header a caller sends before setting its own.
package notes

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// MaxNoteBytes bounds one note's text.
const MaxNoteBytes = 1 << 20

// Note is one stored note.
type Note struct {
	Name     string    `json:"name"`
	Text     string    `json:"text"`
	Author   string    `json:"author"` // clientId that last wrote it, from the sidecar
	Modified time.Time `json:"modified"`
}

// Service is the notes HTTP service. The zero value is not usable; call New.
type Service struct {
	mu    sync.RWMutex
	notes map[string]Note
	now   func() time.Time
}

// New returns an empty notes service.
func New() *Service { return &Service{notes: map[string]Note{}, now: time.Now} }

// ServeHTTP routes:
//
//	GET    /healthz        liveness (public in routes.yaml)
//	GET    /whoami         the identity the sidecar attached
//	GET    /notes/         list of note names
//	GET    /notes/<name>   one note
//	PUT    /notes/<name>   create or replace (body: the text)
//	DELETE /notes/<name>   delete
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/healthz":
		reply(w, http.StatusOK, map[string]bool{"alive": true})
	case r.URL.Path == "/whoami":
		var scopes []string
		_ = json.Unmarshal([]byte(r.Header.Get("X-Taskcluster-Scopes")), &scopes)
		reply(w, http.StatusOK, map[string]any{
			"clientId": r.Header.Get("X-Taskcluster-Client-Id"),
			"scopes":   scopes,
			"expires":  r.Header.Get("X-Taskcluster-Expires"),
			"scheme":   r.Header.Get("X-Taskcluster-Auth-Scheme"),
		})
	case r.URL.Path == "/notes/" && r.Method == http.MethodGet:
		s.mu.RLock()
		names := make([]string, 0, len(s.notes))
		for n := range s.notes {
			names = append(names, n)
		}
		s.mu.RUnlock()
		sort.Strings(names)
		reply(w, http.StatusOK, map[string][]string{"notes": names})
	case strings.HasPrefix(r.URL.Path, "/notes/") && !strings.Contains(r.URL.Path[len("/notes/"):], "/"):
		s.note(w, r, r.URL.Path[len("/notes/"):])
	default:
		reply(w, http.StatusNotFound, map[string]string{"code": "ResourceNotFound", "message": "no such path"})
	}
}

func (s *Service) note(w http.ResponseWriter, r *http.Request, name string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.mu.RLock()
		n, ok := s.notes[name]
		s.mu.RUnlock()
		if !ok {
			reply(w, http.StatusNotFound, map[string]string{"code": "ResourceNotFound", "message": "no note " + name})
			return
		}
		reply(w, http.StatusOK, n)
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxNoteBytes+1))
		if err != nil || len(body) > MaxNoteBytes {
			reply(w, http.StatusRequestEntityTooLarge, map[string]string{"code": "InputTooLarge", "message": "a note holds at most 1 MiB"})
			return
		}
		n := Note{Name: name, Text: string(body), Author: r.Header.Get("X-Taskcluster-Client-Id"), Modified: s.now().UTC()}
		s.mu.Lock()
		s.notes[name] = n
		s.mu.Unlock()
		reply(w, http.StatusOK, n)
	case http.MethodDelete:
		s.mu.Lock()
		delete(s.notes, name)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		reply(w, http.StatusMethodNotAllowed, map[string]string{"code": "MethodNotAllowed", "message": r.Method + " is not supported"})
	}
}

func reply(w http.ResponseWriter, status int, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
