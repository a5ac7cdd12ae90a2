package node

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/node/storetest"
)

const interruptedRepairChildEnv = "CEIBA_INTERRUPTED_REPAIR_CHILD"

// A repair of a damaged store that does not finish must not lose what the
// damaged copy still holds. Here the disk has no room for the rebuilt
// store: the start fails with the disk's error and leaves the damaged
// store in place, and the next start, with room made, repairs it. (Found
// in review, session 40: the repair used to move the damaged store aside
// first and build the new one in its place; a copy cut short, where
// pebble panicked on ENOSPC, left a sound, empty store that the next
// start took as it was, and every record was gone.)
//
// Real pebble on a real (tmpfs) file system, the node in a child process.
// As root only (the test mounts the tmpfs); otherwise skipped.
func TestInterruptedStoreRepairLosesNothing(t *testing.T) {
	if os.Getenv(interruptedRepairChildEnv) != "" {
		t.Skip("this is the child's own run")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })

	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	recs := []*directory.Record{nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo")}
	const total = 400
	for i := range total {
		recs = append(recs, heavyEntry(t, nw, org, fmt.Sprintf("servicio-%03d", i), 1))
	}
	dir := childDir(t, nw, recs)
	if err := os.MkdirAll(filepath.Join(mnt, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(mnt, "data"), filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}

	// The node stores every record, and stops cleanly.
	n := reopenChildNode(t, nw, dir)
	mustPublish(t, n, recs...)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	table := storetest.DamageTable(t, filepath.Join(dir, "data", "store"), 16)

	// The disk has more than the node's reserve free, but not room for a
	// second copy of its records.
	free := func() uint64 {
		var s syscall.Statfs_t
		if err := syscall.Statfs(mnt, &s); err != nil {
			t.Fatal(err)
		}
		return s.Bavail * uint64(s.Bsize)
	}
	f, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for free() > diskReserve+3<<20 {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	t.Logf("damaged %s; %d MiB free for the repair", table, free()>>20)

	// The child starts the node on the damaged store.
	cmd := exec.Command(os.Args[0], "-test.run=^TestInterruptedStoreRepairChild$", "-test.v")
	cmd.Env = append(os.Environ(), interruptedRepairChildEnv+"="+dir, "CEIBA_CRASH_NOW="+strconv.FormatInt(nw.Now.Unix(), 10))
	done := make(chan []byte, 1)
	go func() {
		out, _ := cmd.CombinedOutput()
		done <- out
	}()
	select {
	case out := <-done:
		t.Logf("child's start on the damaged store ended (%v):\n%s", cmd.ProcessState, lastLines(string(out), 60))
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Log("child's start on the damaged store hung; killed it")
	}

	// Room is made, and the node is started again.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	n = reopenChildNode(t, nw, dir)
	kept, _ := filepath.Glob(filepath.Join(dir, "data", "store.damaged-*"))
	found := len(n.State().Search(directory.Query{Text: "asesoria", Limit: directory.MaxLimit}))
	t.Logf("after the restart: %d of %d entries found, %d records stored, repair %+v, damaged copy kept at %v",
		found, total, n.Status().Records, n.Status().StoreRepair, kept)
	if found < total/2 {
		t.Fatalf("after an interrupted repair and a restart the node finds %d of its %d entries (damaged copy: %v)",
			found, total, kept)
	}
}

func lastLines(s string, k int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-k):], "\n")
}

// TestInterruptedStoreRepairChild is the child of TestInterruptedStoreRepairLosesNothing.
func TestInterruptedStoreRepairChild(t *testing.T) {
	dir := os.Getenv(interruptedRepairChildEnv)
	if dir == "" {
		t.Skip("runs only as a child process")
	}
	n, _ := startChildNode(t, dir)
	fmt.Println("STARTED", n.Status().Records)
	if err := n.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Log(err)
	}
}

// A repair stopped between moving the damaged store aside and moving the
// rebuilt one into its place (data/store missing, data/store.rebuild
// complete): the next start moves the rebuilt store in and loads its
// records, rather than starting on a fresh, empty store.
func TestRepairStoppedBetweenTheRenamesIsFinished(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	n := startNode(t, cfg)
	mustPublish(t, n, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	for i := range 8 {
		mustPublish(t, n, entryRec(t, nw, org, fmt.Sprintf("servicio-%d", i), 1))
	}
	want := len(storedHashes(n))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(cfg.DataDir, "store")
	damaged := store + ".damaged-20261201T000000Z"
	if err := os.Mkdir(damaged, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(store, store+".rebuild"); err != nil {
		t.Fatal(err)
	}

	n = startNode(t, cfg)
	if got := len(storedHashes(n)); got != want {
		t.Errorf("after a repair stopped between its renames the node holds %d of its %d records", got, want)
	}
	if rep := n.Status().StoreRepair; rep == nil || rep.MovedTo != damaged {
		t.Errorf("the finished repair is reported as %+v, want the damaged copy at %s", rep, damaged)
	}
	if _, err := os.Lstat(store + ".rebuild"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the rebuilt store is still beside the store: %v", err)
	}
}
