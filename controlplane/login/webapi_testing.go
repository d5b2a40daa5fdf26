package login

// TestingAddStrategy adds a strategy to a built service before it serves.
// For tests outside this package (the web UI's) that sign users in
// through the real browser flow with a fake provider; production code
// configures strategies through Config.Strategies only.
func (s *Service) TestingAddStrategy(st Strategy) {
	s.strategies[st.Name()] = st
	s.order = append(s.order, st.Name())
}
