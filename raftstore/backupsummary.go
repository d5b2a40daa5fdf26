package raftstore

import (
	"fmt"
	"io"
	"time"
)

// BackupSummary describes a backup (or the current state) for an operator
// about to replace one with the other.
type BackupSummary struct {
	Index   uint64 // the Raft index the state stands at
	Clients int
	Roles   int
	// LoginRecords counts the login service's records (sessions, grants,
	// OAuth2 codes and tokens): a restore replaces them too.
	LoginRecords int
	// Newest is the latest change the state records (an audit entry, or a
	// client's or role's lastModified); NewestWhat says what it was.
	Newest     time.Time
	NewestWhat string
}

// SummarizeBackup reads a backup completely (the checks RestoreSnapshot
// makes, but the keyring's) and summarizes it. A bad one is ErrBadSnapshot.
func SummarizeBackup(r io.Reader) (BackupSummary, error) {
	st, idx, err := readSnapshot(r)
	if err != nil {
		return BackupSummary{}, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	sum := BackupSummary{Index: idx, Clients: len(st.clients), Roles: len(st.roles), LoginRecords: len(st.logins)}
	note := func(at time.Time, what string) {
		if at.After(sum.Newest) {
			sum.Newest, sum.NewestWhat = at, what
		}
	}
	for _, e := range st.audit {
		note(e.Created, e.EntityType+" "+e.EntityID+" "+e.ActionType+" by "+e.ClientID)
	}
	for _, c := range st.clients {
		note(c.LastModified, "client "+c.ClientID+" modified")
	}
	for _, r := range st.roles {
		note(r.LastModified, "role "+r.RoleID+" modified")
	}
	return sum, nil
}
