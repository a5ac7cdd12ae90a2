package main

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/term"
)

// openPTY opens a pseudo-terminal pair with the system calls alone.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The master first: its hang-up ends a read still blocked on the slave.
	t.Cleanup(func() { master.Close(); slave.Close() })
	return master, slave
}

// TestPassphrasePromptInterrupted: Ctrl-C at the passphrase prompt was
// ignored, because main catches SIGINT into the command's context and
// term.ReadPassword kept waiting for a line (found in review, session 39).
// The prompt now returns "interrupted" when the context ends and gives
// the terminal back with echo on.
func TestPassphrasePromptInterrupted(t *testing.T) {
	_, slave := openPTY(t)
	fd := int(slave.Fd())
	before, err := term.GetState(fd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, err := readPassword(ctx, fd)
		got <- err
	}()
	// Wait until the prompt has turned echo off, so the cancel lands
	// while it reads.
	for deadline := time.Now().Add(10 * time.Second); ; {
		now, err := term.GetState(fd)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*now, *before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the prompt never turned echo off")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, errInterrupted) {
			t.Fatalf("cancelled prompt returned %v, want %v", err, errInterrupted)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the prompt still waits after the context ended")
	}
	after, err := term.GetState(fd)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*after, *before) {
		t.Error("the terminal was not restored (echo stays off)")
	}
}

// TestPassphrasePromptReads: the prompt still reads what is typed.
func TestPassphrasePromptReads(t *testing.T) {
	master, slave := openPTY(t)
	if _, err := master.Write([]byte("correct horse\n")); err != nil {
		t.Fatal(err)
	}
	p, err := readPassword(context.Background(), int(slave.Fd()))
	if err != nil || string(p) != "correct horse" {
		t.Fatalf("read %q, %v", p, err)
	}
}
