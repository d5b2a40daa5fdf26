package controlplanetest

import (
	"context"
	"errors"
	"net/url"
	"sync"

	"github.com/tcauth/tcauth/controlplane/login"
)

// FakeStrategy is a stand-in identity provider named "fake", for tests
// that need a signed-in user but no real provider (integration/ signs
// users in with real ones). A code given to AddUser signs its user in;
// Refresh finds the user again by subject.
type FakeStrategy struct {
	mu    sync.Mutex
	codes map[string]login.User // by sign-in code
	users map[string]login.User // by subject
}

var _ login.Strategy = (*FakeStrategy)(nil)

// NewFakeStrategy returns a provider without users.
func NewFakeStrategy() *FakeStrategy {
	return &FakeStrategy{codes: map[string]login.User{}, users: map[string]login.User{}}
}

func (f *FakeStrategy) Name() string { return "fake" }

func (f *FakeStrategy) AuthCodeURL(state, nonce, verifier, redirectURL string) string {
	return "https://idp.example/authorize?" + url.Values{"state": {state}, "redirect_uri": {redirectURL}}.Encode()
}

// AddUser makes code sign u in (its subject is u.IdentityID).
func (f *FakeStrategy) AddUser(code string, u login.User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u.ProviderID = f.Name()
	f.codes[code], f.users[u.IdentityID] = u, u
}

func (f *FakeStrategy) Exchange(ctx context.Context, code, nonce, verifier, redirectURL string) (login.User, login.Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.codes[code]
	if !ok {
		return login.User{}, login.Grant{}, errors.New("fake: unknown code")
	}
	return u, login.Grant{Subject: u.IdentityID, AccessToken: "provider-" + code}, nil
}

func (f *FakeStrategy) Refresh(ctx context.Context, g login.Grant) (login.User, login.Grant, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[g.Subject]
	if !ok {
		return login.User{}, g, false, login.ErrUserGone
	}
	return u, g, false, nil
}

func (f *FakeStrategy) BearerUser(context.Context, string) (login.User, error) {
	return login.User{}, login.ErrNotSupported
}
