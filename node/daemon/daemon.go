package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
)

// Options start a daemon.
type Options struct {
	Home       Home
	Passphrase string
	Logger     *slog.Logger
	// WorkFactor is scrypt's log2(N) for re-saving the keystore; 0 keeps
	// directory.DefaultWorkFactor.
	WorkFactor int
	// SyncInterval overrides the node's periodic anti-entropy interval.
	SyncInterval time.Duration
	// HeartbeatInterval overrides how often a steward's node publishes
	// its heartbeat (heartbeat.go); 0 means hourly.
	HeartbeatInterval time.Duration
}

// Daemon is a running node with its local API.
type Daemon struct {
	opts  Options
	home  Home
	log   *slog.Logger
	token string

	id *directory.Identity

	mu   sync.Mutex // guards cfg, ks, node and invites
	cfg  *Config
	ks   *directory.Keystore
	node *node.Node

	invites *inviteBook
	// wiped is set (under mu) once WipeAndStop has destroyed the home:
	// nothing may start the node or write the keys again. exit closes
	// then, and Wait returns.
	wiped    bool
	exit     chan struct{}
	exitOnce sync.Once
	// rotateAuto, when set (by tests, under mu), makes the automatic
	// rotation instead of rotate, so a test can make it fail.
	rotateAuto func(context.Context, *node.Node, directory.Hash) error
	ops        opsState // metrics.go
	srv        *http.Server
	ln         net.Listener
	appSrv     *http.Server // the web app's, when [webapp] asks (webapp.go)
	appLn      net.Listener
	stop       context.CancelFunc
	ctx        context.Context
	wg         sync.WaitGroup
}

// Start opens the keystore, starts the node if this home has joined a
// network, and serves the local API. It returns once the API listens.
func Start(ctx context.Context, o Options) (*Daemon, error) {
	h := o.Home
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg, err := h.LoadConfig()
	if err != nil {
		return nil, err
	}
	if err := h.tightenSecrets(log); err != nil {
		return nil, err
	}
	ks, err := loadKeys(h.KeysPath(), o.Passphrase)
	if err != nil {
		return nil, err
	}
	tok, err := h.Token()
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{opts: o, home: h, log: log, token: tok, cfg: cfg, ks: ks, id: ks.Identity, stop: cancel, ctx: dctx, exit: make(chan struct{})}
	if d.invites, err = loadInvites(h.InvitesPath()); err != nil {
		cancel()
		return nil, err
	}
	if _, joined, _ := cfg.NetworkID(); joined {
		if err := d.startNode(ctx); err != nil {
			cancel()
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("local API on %s: %w (is another daemon running for this home?)", cfg.API.Listen, err)
	}
	d.ln = ln
	d.srv = &http.Server{Handler: d.routes(), ReadHeaderTimeout: 10 * time.Second}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("local API stopped", "err", err)
		}
	}()
	log.Info("local API listening", "addr", "http://"+ln.Addr().String())
	if err := d.serveWebapp(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// APIAddr is where the local API listens.
func (d *Daemon) APIAddr() string { return d.ln.Addr().String() }

// startNode starts the node for the configured network. Callers hold no
// lock; it takes d.mu.
func (d *Daemon) startNode(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.node != nil {
		return nil
	}
	if d.wiped {
		return errWiped
	}
	netID, joined, err := d.cfg.NetworkID()
	if err != nil || !joined {
		return errors.Join(err, errors.New("this node has not joined a network"))
	}
	n, err := node.New(ctx, node.Config{
		DataDir:      d.home.DataDir(),
		Listen:       d.cfg.Node.Listen,
		Bootstrap:    d.cfg.Node.Bootstrap,
		Network:      netID,
		Keystore:     d.ks,
		SaveKeys:     d.saveKeys,
		Logger:       d.log,
		SyncInterval: d.cfg.syncInterval(d.opts.SyncInterval),
		DHT:          d.cfg.dhtConfig(),
		Transport:    d.cfg.transportConfig(),
	})
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	// Rebuilding the state from the store leaves about as much garbage as
	// the state itself (the store's sealed copies, the decrypted bytes);
	// left to the scavenger it stayed resident. One collection now hands
	// it back at once; in the background, so that the API does not wait
	// for it (nor callers for d.mu, held here).
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		debug.FreeOSMemory()
	}()
	d.node = n
	if d.cfg.API.Metrics {
		d.exportMetrics(n)
	}
	n.Host().SetStreamHandler(InviteProtocol, d.handleInvite)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.watch(n)
	}()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.heartbeats(n)
	}()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.republishCarried(n)
	}()
	for _, a := range n.Addrs() {
		d.log.Info("node listening", "addr", a.String())
	}
	return nil
}

// saveKeys persists the keystore after the node added a read key, and
// adopts it as the daemon's copy.
func (d *Daemon) saveKeys(ks *directory.Keystore) error {
	d.mu.Lock()
	wiped := d.wiped
	d.mu.Unlock()
	if wiped {
		return errWiped
	}
	if err := directory.SaveKeystore(d.home.KeysPath(), ks, d.opts.Passphrase, d.opts.WorkFactor); err != nil {
		return err
	}
	d.mu.Lock()
	d.ks = ks
	d.mu.Unlock()
	return nil
}

// Node returns the running node, or nil before the home joined a network.
func (d *Daemon) Node() *node.Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.node
}

// Close stops the API and the node.
func (d *Daemon) Close() error {
	d.stop()
	if d.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d.srv.Shutdown(ctx)
		cancel()
	}
	d.closeWebapp()
	d.mu.Lock()
	n := d.node
	d.node = nil
	d.mu.Unlock()
	var err error
	if n != nil {
		err = n.Close()
	}
	d.wg.Wait()
	return err
}

// Wait blocks until ctx ends or WipeAndStop has run, then closes the
// daemon.
func (d *Daemon) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-d.exit:
	}
	err := d.Close()
	d.mu.Lock()
	wiped := d.wiped
	d.mu.Unlock()
	if wiped {
		// Whatever a worker wrote between the wipe and its end goes too.
		return Wipe(d.home)
	}
	return err
}

var errWiped = errors.New("this node's keys and data were wiped")

// WipeAndStop is the panic button: it stops the node (which lets go of
// the store), overwrites and deletes the keystore, deletes the whole home,
// and then makes Wait return, so the daemon process exits. The API answers
// the request that asked for it before it closes.
func (d *Daemon) WipeAndStop() error {
	d.mu.Lock()
	d.wiped = true
	n := d.node
	d.node = nil
	d.mu.Unlock()
	d.log.Warn("wiping this home's keys and data, then stopping", "home", d.home.Dir)
	d.stop()
	if n != nil {
		n.Close()
	}
	err := Wipe(d.home)
	d.exitOnce.Do(func() { close(d.exit) })
	return err
}

// removeHomeDir removes the emptied home directory; a test replaces it to
// play a root-owned parent when it runs as root.
var removeHomeDir = os.Remove

// Wipe destroys a home's keys and cache: the keystore is overwritten before
// it is removed, then everything else goes. It does not ask; the CLI asks.
func Wipe(h Home) error {
	link := h.Dir
	dir, err := filepath.EvalSymlinks(h.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing to wipe, but a link left dangling still points here.
		return removeIfSymlink(link)
	}
	if err != nil {
		return err
	}
	// A home reached through a symbolic link is wiped where it lives:
	// RemoveAll on the link would remove only the link.
	h = Home{Dir: dir}
	// keys.v1.age, which `ceiba upgrade` keeps, holds the same identity.
	for _, p := range []string{h.KeysPath(), h.KeysV1Path()} {
		if fi, err := os.Stat(p); err == nil {
			junk := make([]byte, fi.Size())
			if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
				f.Write(junk)
				f.Sync()
				f.Close()
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	// The Debian home /var/lib/ceiba sits in root-owned /var/lib: the
	// ceiba user can empty it but not remove it. Its contents are gone,
	// which is what the wipe promises.
	if err := removeHomeDir(dir); err != nil && !errors.Is(err, fs.ErrPermission) && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return removeIfSymlink(link)
}

// removeIfSymlink removes p if it is a symbolic link, and nothing else.
func removeIfSymlink(p string) error {
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return nil
}
