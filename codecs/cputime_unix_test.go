//go:build unix

package codecs

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time this process has used. Benchmarks report
// throughput per CPU second as well as per wall second, because on a shared
// machine the wall clock mostly measures the other tenants.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
