package protocol

// ClientIDPattern is the pattern every clientId must match: the
// Taskcluster API builder's `clientId` path-parameter pattern (docs/api.md §1),
// which the control plane enforces on every route with a clientId. The
// sidecar uses the same rule to refuse a Hawk id that can never name a
// client without asking the control plane about it.
const ClientIDPattern = `^[A-Za-z0-9!@/:.+|_-]+$`

// ValidClientID reports whether id matches ClientIDPattern. It is a
// byte loop rather than a regexp so that it costs nothing per request
// (FuzzValidClientID checks that both agree).
func ValidClientID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !clientIDByte[id[i]] {
			return false
		}
	}
	return true
}

var clientIDByte = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!@/:.+|_-" {
		t[c] = true
	}
	return t
}()
