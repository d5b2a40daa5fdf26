package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/raftstore"
	"github.com/tcauth/tcauth/scopeengine"
)

// APIAddressMeta is the node-metadata key under which a node publishes its
// HTTP base URL.
const APIAddressMeta = "api"

// raftStore adapts a *raftstore.Store to Store.
type raftStore struct{ rs *raftstore.Store }

// NewRaftStore returns rs as the control plane's Store.
func NewRaftStore(rs *raftstore.Store) Store { return raftStore{rs} }

func clientRecord(c raftstore.Client) ClientRecord {
	return ClientRecord{ClientID: c.ClientID, Description: c.Description, Scopes: c.Scopes, Expires: c.Expires,
		Created: c.Created, LastModified: c.LastModified, LastDateUsed: c.LastDateUsed, LastRotated: c.LastRotated,
		DeleteOnExpiration: c.DeleteOnExpiration, Disabled: c.Disabled}
}

func roleRecord(r raftstore.Role) RoleRecord {
	return RoleRecord{RoleID: r.RoleID, Description: r.Description, Scopes: r.Scopes, Created: r.Created, LastModified: r.LastModified}
}

func (a raftStore) Client(id string) (ClientRecord, bool) {
	c, ok := a.rs.Client(id)
	return clientRecord(c), ok
}

func (a raftStore) AccessToken(id string) (string, bool, error) { return a.rs.AccessToken(id) }

func (a raftStore) ListClients(prefix string, offset, limit int) ([]ClientRecord, bool) {
	cs, more := a.rs.ListClients(prefix, offset, limit)
	out := make([]ClientRecord, len(cs))
	for i, c := range cs {
		out[i] = clientRecord(c)
	}
	return out, more
}

func (a raftStore) Role(id string) (RoleRecord, bool) {
	r, ok := a.rs.Role(id)
	return roleRecord(r), ok
}

func (a raftStore) Roles() []RoleRecord {
	rs := a.rs.Roles()
	out := make([]RoleRecord, len(rs))
	for i, r := range rs {
		out[i] = roleRecord(r)
	}
	return out
}

func (a raftStore) Resolver() *scopeengine.Resolver { return a.rs.Resolver() }

func (a raftStore) Audit(q AuditQuery, offset, limit int) ([]AuditRecord, bool) {
	return a.rs.Audit(q, offset, limit)
}

func (a raftStore) AppliedIndex() uint64 { return a.rs.AppliedIndex() }

func (a raftStore) Changes(ctx context.Context, after uint64) ([]Change, uint64, error) {
	cs, idx, err := a.rs.Changes(ctx, after)
	if err != nil {
		return nil, idx, err
	}
	out := make([]Change, len(cs))
	for i, c := range cs {
		out[i] = Change{Index: c.Index, Kind: c.Kind, ID: c.ID, Deleted: c.Deleted(), Op: c.Op}
	}
	return out, idx, nil
}

func (a raftStore) LinearizableRead(ctx context.Context) error {
	return a.rs.LinearizableRead(ctx)
}

func (a raftStore) IsLeader() bool { return a.rs.IsLeader() }

// CaughtUp and WaitCaughtUp make the adapter a CatchUpReporter.
func (a raftStore) CaughtUp() bool { return a.rs.CaughtUp() }

func (a raftStore) WaitCaughtUp(ctx context.Context) error { return a.rs.WaitCaughtUp(ctx) }

// SetReadIndexSource makes the adapter a ReadIndexSetter.
func (a raftStore) SetReadIndexSource(src func(ctx context.Context) (uint64, error)) {
	a.rs.SetReadIndexSource(src)
}

func (a raftStore) RaftState() string { return strings.ToLower(a.rs.State()) }

func (a raftStore) LeaderAPIAddress() string {
	id, _ := a.rs.Leader()
	if id == "" {
		return ""
	}
	return a.rs.NodeMeta(id)[APIAddressMeta]
}

func (a raftStore) PublishAPIAddress(ctx context.Context, url string) error {
	return a.rs.SetNodeMeta(ctx, map[string]string{APIAddressMeta: url})
}

func (a raftStore) Apply(ctx context.Context, cmd Command) error {
	if cmd.Op == OpSyncStaticClients {
		specs := make([]raftstore.StaticClientSpec, len(cmd.Static))
		for i, s := range cmd.Static {
			specs[i] = raftstore.StaticClientSpec{ClientID: s.ClientID, AccessToken: s.AccessToken, Description: s.Description, Scopes: s.Scopes}
		}
		_, err := a.rs.SyncStaticClients(ctx, cmd.Time, specs)
		return err
	}
	rc := raftstore.Command{Op: raftstore.Op(cmd.Op), Time: cmd.Time, Actor: cmd.Actor, ID: cmd.ID,
		Disabled: cmd.Disabled, LastUsed: cmd.LastUsed, Before: cmd.Before}
	switch cmd.Op {
	case OpCreateClient, OpUpdateClient:
		c := cmd.Client
		rc.Client = &raftstore.Client{ClientID: c.ClientID, Description: c.Description, Scopes: c.Scopes, Expires: c.Expires,
			Created: c.Created, LastModified: c.LastModified, LastDateUsed: c.LastDateUsed, LastRotated: c.LastRotated,
			DeleteOnExpiration: c.DeleteOnExpiration, Disabled: c.Disabled}
		if cmd.Op == OpCreateClient {
			sealed, err := a.rs.SealToken(c.ClientID, cmd.AccessToken)
			if err != nil {
				return err
			}
			rc.Client.SealedToken = sealed
		}
	case OpResetAccessToken:
		sealed, err := a.rs.SealToken(cmd.ID, cmd.AccessToken)
		if err != nil {
			return err
		}
		rc.SealedToken = sealed
	case OpCreateRole, OpUpdateRole:
		r := cmd.Role
		rc.Role = &raftstore.Role{RoleID: r.RoleID, Description: r.Description, Scopes: r.Scopes, Created: r.Created, LastModified: r.LastModified}
	}
	_, err := a.rs.Apply(ctx, rc)
	return err
}

// ---- login records (LoginStore) ----

// ApplyLogin maps a login write onto raftstore's login ops, sealing the
// record's data first: plaintext never enters the log.
func (a raftStore) ApplyLogin(ctx context.Context, cmd login.Command) (login.Result, uint64, error) {
	rc := raftstore.Command{Time: cmd.Time}
	switch cmd.Op {
	case login.OpPut:
		r := cmd.Record
		rec := &raftstore.LoginRecord{Kind: r.Kind, Key: r.Key, Identity: r.Identity, Created: r.Created, Expires: r.Expires}
		if len(r.Data) > 0 {
			sealed, err := a.rs.SealLoginData(r.Kind, r.Key, r.Data)
			if err != nil {
				return login.Result{}, 0, err
			}
			rec.SealedData = sealed
		}
		rc.Op, rc.Login, rc.Create, rc.MaxPerIdentity = raftstore.OpLoginPut, rec, cmd.Create, cmd.MaxPerIdentity
	case login.OpTake:
		rc.Op, rc.Kind, rc.Key = raftstore.OpLoginTake, cmd.Kind, cmd.Key
	case login.OpDelete:
		rc.Op, rc.Kind, rc.Keys, rc.Identity = raftstore.OpLoginDelete, cmd.Kind, cmd.Keys, cmd.Identity
	case login.OpPurge:
		rc.Op = raftstore.OpLoginPurge
	default:
		return login.Result{}, 0, fmt.Errorf("%w: unknown login op %q", raftstore.ErrBadCommand, cmd.Op)
	}
	res, err := a.rs.Apply(ctx, rc)
	out := login.Result{Count: res.Count}
	// The taken record, or on a conflict the existing one.
	if res.Login != nil && (cmd.Op == login.OpTake || errors.Is(err, raftstore.ErrConflict)) {
		rec, oerr := a.openLogin(*res.Login)
		if oerr != nil && err == nil {
			return out, res.Index, oerr
		}
		out.Record = rec
	}
	switch {
	case errors.Is(err, raftstore.ErrNotFound):
		err = fmt.Errorf("%w (%v)", login.ErrNotFound, err)
	case errors.Is(err, raftstore.ErrConflict):
		err = fmt.Errorf("%w (%v)", login.ErrConflict, err)
	}
	return out, res.Index, err
}

func (a raftStore) openLogin(r raftstore.LoginRecord) (login.Record, error) {
	data, err := a.rs.OpenLoginData(r)
	if err != nil {
		return login.Record{}, fmt.Errorf("controlplane: opening login record data: %w", err)
	}
	return login.Record{Kind: r.Kind, Key: r.Key, Identity: r.Identity, Created: r.Created, Expires: r.Expires, Data: data}, nil
}

func (a raftStore) LoginRecord(kind, key string) (login.Record, bool, error) {
	r, ok := a.rs.LoginRecord(kind, key)
	if !ok {
		return login.Record{}, false, nil
	}
	rec, err := a.openLogin(r)
	return rec, true, err
}

func (a raftStore) WaitForIndex(ctx context.Context, idx uint64) error {
	return a.rs.WaitForIndex(ctx, idx)
}
