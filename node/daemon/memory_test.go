package daemon

import (
	"context"
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
	"time"
)

// The daemon's soft memory limit sits a margin above what the process
// holds: at least 32 MiB (a small node does not collect all the time), an
// eighth of the live heap for a large one (GOGC=100 would let it double).
func TestMemoryLimitFollowsLiveHeap(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ live, other, want uint64 }{
		{10 * mib, 5 * mib, 47 * mib},
		{200 * mib, 20 * mib, 252 * mib},
		{400 * mib, 20 * mib, 470 * mib},
	} {
		if got := memoryLimitFor(c.live, c.other); got != int64(c.want) {
			t.Errorf("live %d MiB, other %d MiB: limit %d MiB, want %d", c.live/mib, c.other/mib, got/mib, c.want/mib)
		}
	}
}

// ManageMemory sets a limit above what the process holds while it runs,
// and lifts it when it ends.
func TestManageMemorySetsAndLiftsTheLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ManageMemory(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) == math.MaxInt64 {
		if time.Now().After(deadline) {
			t.Fatal("no memory limit was set")
		}
		time.Sleep(time.Millisecond)
	}
	live, other := memoryInUse()
	if got := debug.SetMemoryLimit(-1); got < int64(live+other) || got > int64(live+other)+1<<30 {
		t.Errorf("limit %d MiB, with %d MiB live and %d MiB other", got>>20, live>>20, other>>20)
	}
	cancel()
	<-done
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("the limit stayed at %d MiB after ManageMemory ended", got>>20)
	}
}

// An operator's GOMEMLIMIT wins: ManageMemory changes nothing.
func TestManageMemoryLeavesGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "3GiB")
	before := debug.SetMemoryLimit(3 << 30)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	ManageMemory(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("the limit is %d MiB, GOMEMLIMIT said 3 GiB", got>>20)
	}
}

// The start collects less often, and the setting is put back after it;
// an operator's GOGC is left as it is.
func TestCollectLessDuringStart(t *testing.T) {
	gcPercent := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	before := gcPercent()
	t.Cleanup(func() { debug.SetGCPercent(before) })
	t.Setenv("GOGC", "")
	restore := CollectLessDuringStart()
	if got := gcPercent(); got != startGCPercent {
		t.Errorf("GOGC %d during the start, want %d", got, startGCPercent)
	}
	restore()
	if got := gcPercent(); got != before {
		t.Errorf("GOGC %d after the start, want %d as before it", got, before)
	}
	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50)
	restore = CollectLessDuringStart()
	if got := gcPercent(); got != 50 {
		t.Errorf("GOGC %d during the start, the operator's GOGC said 50", got)
	}
	restore()
}
