package controlplane

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// clientJSON renders a stored client (docs/api.md §2): scopes sorted by
// scopeCompare but not normalized [copy of the reference's side effect],
// expandedScopes = expand(scopes) without anonymous.
func (s *Server) clientJSON(rec ClientRecord) protocol.ClientJSON {
	scopes := slices.Clone(rec.Scopes)
	if scopes == nil {
		scopes = []string{}
	}
	scopeengine.SortScopes(scopes)
	return protocol.ClientJSON{
		ClientID: rec.ClientID, Description: rec.Description, Expires: rec.Expires, Created: rec.Created,
		LastModified: rec.LastModified, LastDateUsed: rec.LastDateUsed, LastRotated: rec.LastRotated,
		DeleteOnExpiration: rec.DeleteOnExpiration, Scopes: scopes,
		ExpandedScopes: slices.Clone(s.clients.expand(rec)), Disabled: rec.Disabled,
	}
}

func errClientNotFound() error { return apiErr(protocol.CodeResourceNotFound, "Client not found") }

// staticGuard rejects changes to static/ clients (docs/api.md §4).
func staticGuard(clientID string) error {
	if strings.HasPrefix(clientID, "static/") {
		return apiErr(protocol.CodeInputError, "clientId %q starts with \"static/\" which is reserved for statically configured clients. "+
			"Static clients are managed by the deployment's configuration, not through the API.", clientID)
	}
	return nil
}

// noDoubleStar rejects scopes ending in ** (docs/api.md §4).
func noDoubleStar(scopes []string) error {
	for _, sc := range scopes {
		if strings.HasSuffix(sc, "**") {
			return apiErr(protocol.CodeInputError, "scopes must not end with `**`")
		}
	}
	return nil
}

// apply runs cmd through the store, timing it for the apply histogram.
func (s *Server) apply(ctx context.Context, cmd Command) error {
	start := time.Now()
	err := s.store.Apply(ctx, cmd)
	s.metrics.applyLatency.WithLabelValues(string(cmd.Op)).Observe(time.Since(start).Seconds())
	return err
}

type clientInput struct {
	expires            time.Time
	description        string
	scopes             []string // nil = absent
	deleteOnExpiration bool
}

func (c *call) clientInput() (clientInput, error) {
	m := c.input.(map[string]any)
	exp, err := parseDateTime(m["expires"].(string))
	if err != nil {
		return clientInput{}, apiErr(protocol.CodeInputError, "invalid expires: %s", err.Error())
	}
	in := clientInput{expires: exp, description: m["description"].(string), deleteOnExpiration: m["deleteOnExpiration"].(bool)}
	if v, ok := m["scopes"]; ok {
		in.scopes = stringList(v)
	}
	return in, nil
}

func stringList(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		out = append(out, x.(string))
	}
	return out
}

func anyList(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

func (s *Server) listClients(c *call) error {
	offset, err := decodeOffset(c.query["continuationToken"])
	if err != nil {
		return err
	}
	limit := pageSize(c.query["limit"])
	recs, more := s.store.ListClients(c.query["prefix"], offset, limit)
	out := protocol.ListClientsResponse{Clients: make([]protocol.ClientJSON, 0, len(recs))}
	for _, r := range recs {
		out.Clients = append(out.Clients, s.clientJSON(r))
	}
	if more {
		out.ContinuationToken = clientsTokens.Encode(uint64(offset + limit))
	}
	return c.reply(out)
}

func (s *Server) getClient(c *call) error {
	rec, ok := s.store.Client(c.params["clientId"])
	if !ok {
		return errClientNotFound()
	}
	return c.reply(s.clientJSON(rec))
}

// idempotentCreate reports whether an existing client equals the create
// request closely enough for a retry to succeed (docs/api.md §4).
func idempotentCreate(rec ClientRecord, in clientInput, now time.Time) bool {
	return reflect.DeepEqual(nonNilStrings(rec.Scopes), nonNilStrings(in.scopes)) &&
		rec.Expires.Equal(in.expires) && rec.Description == in.description &&
		!rec.Disabled && now.Sub(rec.Created) < 15*time.Minute
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) createClient(c *call) error {
	id := c.params["clientId"]
	in, err := c.clientInput()
	if err != nil {
		return err
	}
	if in.scopes == nil {
		in.scopes = []string{}
	}
	if err := staticGuard(id); err != nil {
		return err
	}
	if err := noDoubleStar(in.scopes); err != nil {
		return err
	}
	if err := c.authorize(map[string]any{"clientId": id, "scopes": anyList(in.scopes)}); err != nil {
		return err
	}
	retry := func() error {
		rec, ok := s.store.Client(id)
		if !ok || !idempotentCreate(rec, in, c.now) {
			return apiErr(protocol.CodeRequestConflict, "Client already exists")
		}
		token, ok, err := s.store.AccessToken(id)
		if err != nil {
			return err
		}
		if !ok {
			return apiErr(protocol.CodeRequestConflict, "Client already exists")
		}
		out := s.clientJSON(rec)
		out.AccessToken = token
		return c.reply(out)
	}
	if _, exists := s.store.Client(id); exists {
		return retry()
	}
	token := newAccessToken()
	rec := ClientRecord{
		ClientID: id, Description: in.description, Scopes: in.scopes, Expires: in.expires,
		Created: c.now, LastModified: c.now, LastDateUsed: c.now, LastRotated: c.now,
		DeleteOnExpiration: in.deleteOnExpiration,
	}
	err = s.apply(c.r.Context(), Command{Op: OpCreateClient, Time: c.now, Actor: c.clientID(), ID: id, Client: rec, AccessToken: token})
	if errors.Is(err, ErrConflict) {
		return retry()
	}
	if err != nil {
		return err
	}
	stored, ok := s.store.Client(id)
	if !ok {
		return errors.New("created client vanished")
	}
	out := s.clientJSON(stored)
	out.AccessToken = token
	return c.reply(out)
}

func (s *Server) updateClient(c *call) error {
	id := c.params["clientId"]
	in, err := c.clientInput()
	if err != nil {
		return err
	}
	if err := staticGuard(id); err != nil {
		return err
	}
	if err := noDoubleStar(in.scopes); err != nil {
		return err
	}
	rec, ok := s.store.Client(id)
	if !ok {
		return errClientNotFound()
	}
	// scopesAdded is a plain string difference against the stored,
	// unexpanded scopes (docs/api.md §4; roles use satisfaction instead).
	added := []any{}
	for _, sc := range in.scopes {
		if !slices.Contains(rec.Scopes, sc) {
			added = append(added, sc)
		}
	}
	if err := c.authorize(map[string]any{"clientId": id, "scopesAdded": added}); err != nil {
		return err
	}
	rec.Description, rec.Expires, rec.DeleteOnExpiration = in.description, in.expires, in.deleteOnExpiration
	if in.scopes != nil {
		rec.Scopes = in.scopes
	}
	rec.LastModified = c.now
	if err := s.apply(c.r.Context(), Command{Op: OpUpdateClient, Time: c.now, Actor: c.clientID(), ID: id, Client: rec}); err != nil {
		if errors.Is(err, ErrNotFound) {
			return errClientNotFound()
		}
		return err
	}
	return s.replyClient(c, id, "")
}

func (s *Server) replyClient(c *call, id, token string) error {
	rec, ok := s.store.Client(id)
	if !ok {
		return errClientNotFound()
	}
	out := s.clientJSON(rec)
	out.AccessToken = token
	return c.reply(out)
}

func (s *Server) resetAccessToken(c *call) error {
	id := c.params["clientId"]
	if err := staticGuard(id); err != nil {
		return err
	}
	if _, ok := s.store.Client(id); !ok {
		return errClientNotFound()
	}
	token := newAccessToken()
	if err := s.apply(c.r.Context(), Command{Op: OpResetAccessToken, Time: c.now, Actor: c.clientID(), ID: id, AccessToken: token}); err != nil {
		if errors.Is(err, ErrNotFound) {
			return errClientNotFound()
		}
		return err
	}
	return s.replyClient(c, id, token)
}

func (s *Server) setDisabled(disabled bool) func(*call) error {
	return func(c *call) error {
		id := c.params["clientId"]
		if err := staticGuard(id); err != nil {
			return err
		}
		if _, ok := s.store.Client(id); !ok {
			return errClientNotFound()
		}
		if err := s.apply(c.r.Context(), Command{Op: OpSetClientDisabled, Time: c.now, Actor: c.clientID(), ID: id, Disabled: disabled}); err != nil {
			if errors.Is(err, ErrNotFound) {
				return errClientNotFound()
			}
			return err
		}
		return s.replyClient(c, id, "")
	}
}

func (s *Server) deleteClient(c *call) error {
	id := c.params["clientId"]
	if err := staticGuard(id); err != nil {
		return err
	}
	err := s.apply(c.r.Context(), Command{Op: OpDeleteClient, Time: c.now, Actor: c.clientID(), ID: id})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return c.noContent()
}

var auditEntityTypes = []string{"client", "role", "secret", "hook", "worker-pool"}

func (s *Server) getEntityHistory(c *call) error {
	typ := c.params["entityType"]
	if !slices.Contains(auditEntityTypes, typ) {
		return apiErr(protocol.CodeInputError, "Invalid entityType %q; must be one of %s", typ, strings.Join(auditEntityTypes, ", "))
	}
	return s.replyAudit(c, AuditQuery{EntityType: typ, EntityID: c.params["entityId"]})
}

// listAuditHistory lists actions performed *by* the client (docs/api.md §4).
func (s *Server) listAuditHistory(c *call) error {
	return s.replyAudit(c, AuditQuery{Actor: c.params["clientId"]})
}

func (s *Server) replyAudit(c *call, q AuditQuery) error {
	offset, err := decodeOffset(c.query["continuationToken"])
	if err != nil {
		return err
	}
	limit := pageSize(c.query["limit"])
	rows, more := s.store.Audit(q, offset, limit)
	out := protocol.AuditHistoryResponse{AuditHistory: make([]protocol.AuditEntryJSON, 0, len(rows))}
	for _, r := range rows {
		out.AuditHistory = append(out.AuditHistory, protocol.AuditEntryJSON{
			ClientID: r.ClientID, ActionType: r.ActionType, Created: r.Created, EntityID: r.EntityID, EntityType: r.EntityType})
	}
	if more {
		out.ContinuationToken = clientsTokens.Encode(uint64(offset + limit))
	}
	return c.reply(out)
}

// Continuation tokens (docs/api.md §1 Pagination).
var (
	clientsTokens = newHashids("salt", 10) // (a): offset, salted, min length 10
	rolesTokens   = newHashids("", 0)      // (b): pair (offset, 10), no salt
)

const maxPage = 1000

// pageSize is min(limit or 1000, 1000). [quirk] rejected: limit=0 makes
// the reference fail its own output validation (500); tcauth treats it as
// "no limit given".
func pageSize(limit string) int {
	n, err := strconv.Atoi(limit)
	if err != nil || n <= 0 || n > maxPage {
		return maxPage
	}
	return n
}

func decodeOffset(token string) (int, error) {
	if token == "" {
		return 0, nil
	}
	nums, err := clientsTokens.Decode(token)
	if err != nil {
		return 0, apiErr(protocol.CodeInputError, "Invalid continuation token")
	}
	if len(nums) == 0 {
		return 0, nil // decodes to nothing → offset 0, as the reference
	}
	if nums[0] > 1<<31 {
		return 0, apiErr(protocol.CodeInputError, "Invalid continuation token")
	}
	return int(nums[0]), nil
}
