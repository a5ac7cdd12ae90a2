//go:build unix

package directory_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the test process has used: what a benchmark
// reports as "one core's time" when other processes share the machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
