package controlplane

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

// Sealer is authenticated encryption under the cluster's shared keyring;
// *raftstore.Keyring satisfies it. The control plane uses it to prove that
// a request comes from another node of the same cluster (peer tickets):
// every node must hold the keyring anyway, so peers need no further secret.
type Sealer interface {
	Seal(id string, plaintext []byte) ([]byte, error)
	Open(id string, sealed []byte) ([]byte, error)
}

// peerHeader carries the peer ticket of a node's own call to another node
// (reportLastUsed). forwardedHeader carries the ticket of a request a
// follower forwarded for a caller.
const peerHeader = "X-Tcauth-Peer"

// Purposes of peer tickets: a ticket made for one cannot be used for the
// other.
const (
	purposeForward  = "forward"
	purposeLastUsed = "last-used"
	// purposeLoginApply: a login write a follower hands to the leader
	// (loginbackend.go), bound to its body.
	purposeLoginApply = "login-apply"
)

// Peer ticket timing. A forward ticket is reused for peerTicketReuse (it
// proves only "a node of this cluster forwarded this"; reuse keeps AES-GCM
// far from its random-nonce limit on a busy follower), and accepted while
// at most peerTicketMaxAge old or peerTicketMaxSkew in the future (node
// clocks differ a little).
const (
	peerTicketReuse   = 30 * time.Second
	peerTicketMaxAge  = 2 * time.Minute
	peerTicketMaxSkew = time.Minute
)

// peerTicketID is the keyring id tickets are sealed under. The keyring
// binds each sealed value to its id; this one holds a NUL, which no
// clientId may contain, so no client's sealed token (backups hold them)
// can pass for a ticket, nor a ticket for a token.
const peerTicketID = "\x00tcauth/peer-ticket/v1"

// Errors of peer ticket checks.
var (
	ErrBadPeerTicket   = errors.New("controlplane: not a peer ticket of this cluster")
	ErrStalePeerTicket = errors.New("controlplane: peer ticket expired or from the future")
)

// peerTickets issues and checks peer tickets: base64url of
// Seal(peerTicketID, "v1\n<purpose>\n<unix seconds>\n<sha256 hex of the body, or empty>").
// The sealing key is the keyring's; the ticket's age and purpose, and for
// reportLastUsed the body, are checked by the receiver.
type peerTickets struct {
	keyring Sealer // nil: processKeyring, made on first use
	now     func() time.Time

	once sync.Once
	seal Sealer

	mu        sync.Mutex
	fwd       string
	fwdIssued time.Time
}

// sealer is the configured keyring, or without one a key of this process.
func (p *peerTickets) sealer() Sealer {
	p.once.Do(func() {
		p.seal = p.keyring
		if p.seal == nil {
			ps, err := processKeyring()
			if err != nil {
				panic("controlplane: no randomness for a process key: " + err.Error())
			}
			p.seal = ps
		}
	})
	return p.seal
}

func (p *peerTickets) issue(purpose string, body []byte) (string, error) {
	hash := ""
	if body != nil {
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
	}
	plain := "v1\n" + purpose + "\n" + strconv.FormatInt(p.now().Unix(), 10) + "\n" + hash
	sealed, err := p.sealer().Seal(peerTicketID, []byte(plain))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// forward returns the (shared, periodically renewed) forward ticket.
func (p *peerTickets) forward() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := p.now(); p.fwd == "" || now.Sub(p.fwdIssued) >= peerTicketReuse || now.Before(p.fwdIssued) {
		t, err := p.issue(purposeForward, nil)
		if err != nil {
			return "", err
		}
		p.fwd, p.fwdIssued = t, now
	}
	return p.fwd, nil
}

// verify checks ticket for purpose; body != nil means the ticket must have
// been issued for exactly that body.
func (p *peerTickets) verify(ticket, purpose string, body []byte) error {
	if ticket == "" || len(ticket) > 512 {
		return ErrBadPeerTicket
	}
	sealed, err := base64.RawURLEncoding.DecodeString(ticket)
	if err != nil {
		return ErrBadPeerTicket
	}
	plain, err := p.sealer().Open(peerTicketID, sealed)
	if err != nil {
		return ErrBadPeerTicket
	}
	parts := strings.Split(string(plain), "\n")
	if len(parts) != 4 || parts[0] != "v1" || parts[1] != purpose {
		return ErrBadPeerTicket
	}
	secs, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return ErrBadPeerTicket
	}
	age := p.now().Sub(time.Unix(secs, 0))
	if age > peerTicketMaxAge || age < -peerTicketMaxSkew {
		return ErrStalePeerTicket
	}
	if body != nil {
		sum := sha256.Sum256(body)
		if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(parts[3])) != 1 {
			return ErrBadPeerTicket
		}
	}
	return nil
}

// forwardedByPeer reports whether r is a request another node of this
// cluster forwarded (a valid forward ticket in forwardedHeader). The
// source address plays no part: TrustedProxies also lists load balancers,
// which pass on whatever their callers send.
func (s *Server) forwardedByPeer(r *http.Request) bool {
	v := r.Header.Get(forwardedHeader)
	return v != "" && s.peers.verify(v, purposeForward, nil) == nil
}

// reportLastUsed receives another node's batch of lastDateUsed bumps. The
// nodes hold no credentials of their own, so the call carries a peer
// ticket bound to its body instead of a Hawk signature; without one it is
// refused, whoever sends it and from wherever (a forged batch would let
// anyone set any client's lastDateUsed). It is served where it arrives,
// never forwarded: a node that is not (or no longer) the leader keeps the
// bumps in its own batch, which its next flush delivers. Times later than
// now are taken as now: a node reports uses it saw, not future ones.
func (s *Server) reportLastUsed(c *call) error {
	if err := s.peers.verify(c.r.Header.Get(peerHeader), purposeLastUsed, c.body); err != nil {
		s.log.Warn("lastDateUsed report refused: not from a peer", "source", c.r.RemoteAddr, "reason", err.Error())
		return apiErr(protocol.CodeInsufficientScopes, "Only control-plane peers may report lastDateUsed (the request carries no valid peer ticket).")
	}
	now := s.cfg.Now()
	for id, v := range c.input.(map[string]any)["lastUsed"].(map[string]any) {
		t, err := parseDateTime(v.(string))
		if err != nil {
			continue
		}
		if t.After(now) {
			t = now
		}
		s.lastUsed.add(id, t)
	}
	return c.reply(struct{}{})
}

// forwardChecked reads (and checks) the body on the node that received the
// request, then forwards it to the leader, unchanged. Signed requests are
// the leader's to judge: it verifies the same Hawk signature from the
// original bytes against current state, so a forwarded request never gets
// more than its caller has, whatever any node says about it — and a
// refusal here could only mean that this node is behind (a client created,
// a token reset or a role granted on another node a moment ago), so
// checking here would cost a verification and decide nothing. Unsigned
// callers are turned away here when the route's path-only scopes refuse
// them; scopes that depend on the body (createClient's scopes, say) are
// checked by the leader's handler only.
func (c *call) forwardChecked() {
	if err := c.readBody(); err != nil {
		c.fail(err)
		return
	}
	c.rewindBody()
	if !c.signed() && c.route.auto {
		if err := c.authorize(stringParams(c.params)); err != nil {
			c.fail(err)
			return
		}
	}
	c.s.forward.serve(c)
}

// signed reports whether the request carries Hawk credentials (a header
// or a bewit), whatever their worth.
func (c *call) signed() bool {
	return c.r.Header.Get("Authorization") != "" || c.r.URL.Query().Has("bewit")
}

// processKeyring is the Sealer of a Server configured without
// PeerKeyring: a keyring of one random key of this process, so the only
// peer the node recognises is itself — a request it forwarded to its own
// address (a stale leader address) still is not forwarded again.
func processKeyring() (*raftstore.Keyring, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return raftstore.NewKeyring(1, map[uint32][]byte{1: key})
}
