package login

// Exports for the external tests (package login_test) that run the
// browser flow over the control plane's real replicated backend.

type FakeStrategy = fakeStrategy

func NewFakeStrategy(name string) *FakeStrategy     { return newFakeStrategy(name) }
func (f *fakeStrategy) AddUser(code string, u User) { f.addUser(code, u) }
func (f *fakeStrategy) RemoveUser(subject string)   { f.removeUser(subject) }
func FlowCookieName(state string) string            { return flowCookieName(state) }
