package daemon

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The Go runtime, left to its default (GOGC=100, no memory limit), lets
// the heap grow to twice what is live before it collects: a node holding
// 100,000 entries (about 200 MiB live) stayed near 500 MiB resident,
// most of it garbage waiting for the next collection, and a start left
// the rebuild's garbage resident too. ManageMemory keeps the process near
// what it needs instead: a soft memory limit (debug.SetMemoryLimit) a
// margin above the live heap, re-derived as the live heap changes. The
// runtime collects sooner as the process nears it and returns freed
// memory to the system to stay under it. It is soft: a process that
// needs more (a large sync, scrypt's 256 MiB for the keystore) still gets
// it, at the price of more frequent collections (the runtime caps their
// CPU at about half), until the next update raises the limit.
//
// An operator's GOMEMLIMIT is left alone: ManageMemory does nothing then.

const (
	// memoryHeadroom is the smallest margin above the live heap: a small
	// node (a few MiB live) would otherwise collect all the time. At 32
	// MiB a node of 100,000 entries (about 155 MiB live) collects after
	// every 32 MiB it allocates: every couple of seconds while it takes in
	// a thousand records a second, for a few percent of one core.
	memoryHeadroom = 32 << 20
	// memoryGrowth is the margin's share of the live heap, an eighth of
	// what GOGC=100 allows: it exceeds the headroom from 256 MiB live.
	memoryGrowth = 0.125
	// memoryEvery is how often the limit follows the live heap: often
	// enough that a catch-up sync growing the heap by the margin meanwhile
	// is rare (reading the metrics costs microseconds).
	memoryEvery = 5 * time.Second
)

// memoryLimitFor is the soft limit for a process with live bytes of live
// heap and other bytes of runtime memory that is not heap (stacks, the
// runtime's own structures).
func memoryLimitFor(live, other uint64) int64 {
	margin := max(uint64(memoryHeadroom), uint64(float64(live)*memoryGrowth))
	return int64(min(live+other+margin, math.MaxInt64))
}

// ManageMemory sets and follows the soft memory limit until ctx ends. It
// is for the process that runs the daemon (cmd/ceiba), started once the
// daemon has started (a limit set before the node rebuilt its state would
// make the rebuild collect all the time); the limit is the whole
// process's, so a library must not set it.
func ManageMemory(ctx context.Context, log *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit set by GOMEMLIMIT; not managed", "GOMEMLIMIT", v)
		return
	}
	defer debug.SetMemoryLimit(math.MaxInt64)
	t := time.NewTicker(memoryEvery)
	defer t.Stop()
	for {
		live, other := memoryInUse()
		debug.SetMemoryLimit(memoryLimitFor(live, other))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// memoryInUse reads the live heap as of the last collection, and the
// runtime's memory that is not heap objects (total mapped and not
// returned, less every heap class).
func memoryInUse() (live, other uint64) {
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	live = v(0)
	heap := v(2) + v(3) + v(4) + v(5)
	if total := v(1); total > heap {
		other = total - heap
	}
	return live, other
}

// startGCPercent is the GOGC a daemon's start runs with. Rebuilding the
// state allocates about as much garbage as it keeps (the store's sealed
// copies, decrypted in place and copied from), and at the default of 100
// the collector ran often enough to be an eighth of a 100,000-entry
// start. At 200 the start to the API with every entry went from 1.04-1.24
// s to 0.85-1.00 s, for a peak 20 MiB higher (290-326 MiB -> 330-349
// MiB; resident once started unchanged, 222 MiB); 300 and 400 gained
// little more and peaked at 370-400 MiB (a kept 100,000-entry home, three
// starts each, alternated).
const startGCPercent = 200

// CollectLessDuringStart sets GOGC to startGCPercent until the returned
// function is called, which puts the previous setting back: for the
// process that runs the daemon (cmd/ceiba), around Start; like the memory
// limit, GOGC is the whole process's, so a library must not set it. An
// operator's GOGC is left alone.
func CollectLessDuringStart() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(startGCPercent)
	return func() { debug.SetGCPercent(old) }
}
