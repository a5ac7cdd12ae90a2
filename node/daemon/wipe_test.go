package daemon

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func wipeTestInit(t *testing.T, dir string) Home {
	t.Helper()
	h := Home{Dir: dir}
	if _, err := Init(h, InitOptions{Name: "x", Passphrase: testPassphrase, WorkFactor: 10, Local: true}); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestWipeThroughSymlink: a home reached through a symbolic link is wiped
// where it lives, and the link goes too; RemoveAll on the link alone left
// config.toml, data/, api.token and revocation.cert behind (found in
// review, session 39).
func TestWipeThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real := wipeTestInit(t, filepath.Join(dir, "usb", "ceiba"))
	link := filepath.Join(dir, "ceiba-home")
	if err := os.Symlink(real.Dir, link); err != nil {
		t.Fatal(err)
	}
	if err := Wipe(Home{Dir: link}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(real.Dir); !os.IsNotExist(err) {
		left, _ := filepath.Glob(filepath.Join(real.Dir, "*"))
		t.Errorf("the home behind the link is still there: %v", left)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("the link is still there: %v", err)
	}
}

// TestWipeHomeInRootOwnedParent: on the Debian layout the ceiba user can
// empty /var/lib/ceiba but not remove it from /var/lib. Wipe empties it
// and reports success, instead of "wipe failed" with everything gone.
func TestWipeHomeInRootOwnedParent(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "lib")
	h := wipeTestInit(t, filepath.Join(parent, "ceiba"))
	if os.Geteuid() == 0 {
		// Root removes entries from a 0555 directory: play the refusal.
		old := removeHomeDir
		removeHomeDir = func(p string) error {
			if p == h.Dir {
				return &os.PathError{Op: "remove", Path: p, Err: syscall.EACCES}
			}
			return old(p)
		}
		defer func() { removeHomeDir = old }()
	} else {
		if err := os.Chmod(parent, 0o555); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(parent, 0o755)
	}
	if err := Wipe(h); err != nil {
		t.Fatalf("Wipe: %v", err)
	}
	left, err := os.ReadDir(h.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("the home still holds %v", left)
	}
}
