//go:build race

package benchcompare

// raceEnabled: the test binary was built with -race. Its re-executed
// peers (the upstream and the plain proxy) would then run several times
// slower than the tcauth binary they are compared with.
const raceEnabled = true
