// Command ceiba is Ceiba's one binary: the CLI, the daemon and the demo.
// It only parses flags and calls packages node/daemon, node/api and
// node/demo; everything else lives there.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/node/daemon"
)

// version and commit are set at build time with -ldflags
// "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

type globals struct {
	home           string
	json           bool
	passphraseFile string
}

func main() {
	g := &globals{}
	root := &cobra.Command{
		Use:           "ceiba",
		Short:         "Ceiba: a peer-to-peer directory of trusted services for human-rights defenders",
		Long:          "Ceiba keeps a signed, encrypted directory of trusted services (legal aid, shelter,\npsychosocial care, digital-security help) shared between the organizations that run nodes.\nStart with \"ceiba init\", then \"ceiba daemon\".",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.home, "home", defaultHome(), "Ceiba home directory (or set CEIBA_HOME)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print data as JSON")
	root.AddCommand(
		initCmd(g), daemonCmd(g), networkCmd(g), inviteCmd(g), entryCmd(g), searchCmd(g), showCmd(g),
		stewardCmd(g), revokeCmd(g), rotateCmd(g), statusCmd(g), peersCmd(g), keyCmd(g),
		exportCmd(g), importCmd(g), wipeCmd(g), upgradeCmd(g), versionCmd(), releaseCmd(), demoCmd(),
	)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiba: "+oneLine(err))
		os.Exit(1)
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}

func defaultHome() string {
	if h := os.Getenv("CEIBA_HOME"); h != "" {
		return h
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return ".ceiba"
	}
	return filepath.Join(dir, ".ceiba")
}

func (g *globals) homeDir() daemon.Home { return daemon.Home{Dir: g.home} }

// client returns an API client for the daemon of this home.
func (g *globals) client() (*api.Client, error) {
	h := g.homeDir()
	cfg, err := h.LoadConfig()
	if err != nil {
		return nil, err
	}
	tok, err := h.Token()
	if err != nil {
		return nil, err
	}
	return &api.Client{Base: "http://" + cfg.API.Listen, Token: tok}, nil
}

// call sends one API request to this home's daemon.
func (g *globals) call(ctx context.Context, method, path string, in, out any) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	return c.Do(ctx, method, path, in, out)
}

// passphrase reads the keystore passphrase from --passphrase-file, then
// CEIBA_PASSPHRASE, then a prompt on the terminal.
func (g *globals) passphrase(ctx context.Context, confirm bool) (string, error) {
	if g.passphraseFile != "" {
		b, err := os.ReadFile(g.passphraseFile)
		if err != nil {
			return "", fmt.Errorf("passphrase file: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", errors.New("the passphrase file is empty")
		}
		return p, nil
	}
	if p := os.Getenv("CEIBA_PASSPHRASE"); p != "" {
		return p, nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", errors.New("no passphrase: give --passphrase-file or set CEIBA_PASSPHRASE (no terminal to ask on)")
	}
	fmt.Fprint(os.Stderr, "Passphrase: ")
	p, err := readPassword(ctx, int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	if confirm {
		fmt.Fprint(os.Stderr, "Repeat passphrase: ")
		again, err := readPassword(ctx, int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		if string(again) != string(p) {
			return "", errors.New("the passphrases do not match")
		}
	}
	if len(p) == 0 {
		return "", errors.New("an empty passphrase protects nothing")
	}
	return string(p), nil
}

// errInterrupted is what a prompt returns when Ctrl-C (or SIGTERM) ends
// the command's context.
var errInterrupted = errors.New("interrupted")

// readPassword reads a line from the terminal fd without echo, and returns
// when ctx ends: main catches SIGINT to shut down cleanly, so Ctrl-C no
// longer kills the process, and term.ReadPassword alone would keep
// waiting for a line.
func readPassword(ctx context.Context, fd int) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	return readCancelable(ctx, func() ([]byte, error) { return term.ReadPassword(fd) }, func() { term.Restore(fd, state) })
}

// readCancelable runs read and returns its answer, or errInterrupted as
// soon as ctx ends, after restore: the abandoned read has turned echo off,
// and the shell must get the terminal back as it was. The read itself
// stays blocked until the process exits, which it is about to.
func readCancelable(ctx context.Context, read func() ([]byte, error), restore func()) ([]byte, error) {
	type answer struct {
		b   []byte
		err error
	}
	done := make(chan answer, 1)
	go func() {
		b, err := read()
		done <- answer{b, err}
	}()
	select {
	case a := <-done:
		return a.b, a.err
	case <-ctx.Done():
		restore()
		return nil, errInterrupted
	}
}

// print writes v as JSON with --json, or runs the human form.
func (g *globals) print(v any, human func()) error {
	if g.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human()
	return nil
}
