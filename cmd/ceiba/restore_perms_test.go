package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Secrets after a restore. OPERATIONS.md, "Restore or move": create the
// home, copy keys.age, config.toml and api.token into it, run "ceiba
// daemon". Copied from a backup (a USB stick's FAT file system shows every
// file as 0644 or 0755, and `mkdir` makes 0755 under the usual umask), the
// home and its secrets are readable by every user of the machine. The
// daemon makes them 0700 and 0600 and says so, as it does for
// data/host.key. Found in review, session 40: it left api.token, the token
// that lets any local process publish in the organization's name, export
// the directory and wipe the node, keys.age and the home itself as they
// were, and said nothing.
func TestRestoredHomeSecretsAreTightened(t *testing.T) {
	src, _ := initHome(t)
	home := filepath.Join(t.TempDir(), "restored")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o755)
	for _, name := range []string{"keys.age", "config.toml", "api.token"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(home, name), 0o644)
	}
	raw, _ := os.ReadFile(filepath.Join(home, "config.toml"))
	apiPort := freePort(t)
	raw = []byte(regexpListen.ReplaceAllString(string(raw), `listen = "127.0.0.1:`+apiPort+`"`))
	os.WriteFile(filepath.Join(home, "config.toml"), raw, 0o644)
	stop, _, logs := startDaemonLogged(t, home, apiPort)
	daemonStatus(t, home)
	stop()
	said := func(what, name string) bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, what) && strings.Contains(l, name) {
				return true
			}
		}
		return false
	}
	if !said("made it 0600", "api.token") || !said("made it 0600", "keys.age") || !said("made it 0700", home) {
		t.Errorf("the daemon's log does not say what it tightened:\n%s", logs)
	}
	var loose []string
	for _, p := range []string{home, filepath.Join(home, "api.token"), filepath.Join(home, "keys.age")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			loose = append(loose, fmt.Sprintf("%s %v", filepath.Base(p), fi.Mode().Perm()))
		}
	}
	if len(loose) > 0 {
		t.Fatalf("after the daemon ran on a restored home, these are still open to other users: %v", loose)
	}
}

var regexpListen = regexp.MustCompile(`listen = "127\.0\.0\.1:\d+"`)
