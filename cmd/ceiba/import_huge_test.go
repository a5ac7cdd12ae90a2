package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// "ceiba import FILE" with the wrong file, a 4 GiB disk image picked on
// the USB stick by mistake, is refused with a one-line error naming the
// file. Found in review, session 40: the CLI read the whole file into
// memory before anything looked at it (the API takes at most 64 MiB and
// refuses more anyway); under a 2 GiB memory limit (a small VPS, a
// service's MemoryMax) it died with Go's "fatal error: out of memory" and
// a stack trace.
func TestImportOfAHugeFileIsAClearError(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("no prlimit")
	}
	home, _ := initHome(t)
	big := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4 << 30); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(prlimit, "--as="+strconv.Itoa(2<<30), binary, "--home", home, "import", big)
	cmd.Env = append(os.Environ(), testEnv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("ceiba import of a 4 GiB file did not return within 60 s")
	}
	out := stderr.String()
	if strings.Contains(out, "goroutine ") || strings.Contains(out, "fatal error") || strings.Count(strings.TrimSpace(out), "\n") > 0 {
		first := strings.SplitN(out, "\n", 3)
		t.Fatalf("ceiba import of a 4 GiB file crashed instead of a one-line error: %q ... (%d lines)", first[:min(2, len(first))], strings.Count(out, "\n"))
	}
	if !strings.Contains(out, big) {
		t.Errorf("the error does not name the file %s: %q", big, out)
	}
	if cmd.ProcessState.ExitCode() == 0 {
		t.Fatal("ceiba import of a 4 GiB file exited 0")
	}
}
