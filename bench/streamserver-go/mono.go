package main

import (
	"syscall"
	"time"
	"unsafe"
)

// CLOCK_MONOTONIC in seconds, the clock Python's time.monotonic() reads, so times in
// /_stats and the reader's output compare with the harness's. Read once; Go's own
// monotonic clock carries it on.
var monoBase, monoStart = clockMonotonic(), time.Now()

func clockMonotonic() float64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func mono() float64 { return monoBase + time.Since(monoStart).Seconds() }
