//go:build race

package pool

// raceEnabled: the race detector makes sync.Pool drop buffers at random,
// so tests of buffer reuse cannot count allocations.
const raceEnabled = true
