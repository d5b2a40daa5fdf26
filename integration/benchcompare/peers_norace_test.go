//go:build !race

package benchcompare

// raceEnabled: see peers_race_test.go.
const raceEnabled = false
