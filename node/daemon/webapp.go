package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// WebappConfig is [webapp] in config.toml: the reader's web app (issue
// 16, webapp/) served by this daemon to phones. It has its own listener,
// never the local API's: that one must stay on loopback, and the app must
// not share an origin with the web UI, whose pages hold the API token.
type WebappConfig struct {
	// Dir is a built app: make webapp's webapp/dist, or the release's
	// ceiba-<version>-webapp.tar.gz unpacked (the Debian package installs
	// it at /usr/share/ceiba/webapp).
	Dir string `toml:"dir,omitempty"`
	// Listen is the address the app is served on, at /app/.
	Listen string `toml:"listen,omitempty"`
	// TLSCert and TLSKey are PEM files; without them the app is served
	// over plain HTTP, for a TLS proxy in front or for this machine only
	// (browsers run the app only on https:// or on localhost).
	TLSCert string `toml:"tls_cert,omitempty"`
	TLSKey  string `toml:"tls_key,omitempty"`
}

func (c WebappConfig) validate(api string) error {
	if c.Listen == "" {
		if c.Dir != "" || c.TLSCert != "" || c.TLSKey != "" {
			return errors.New("webapp.listen is needed to serve the web app (webapp.dir, tls_cert and tls_key are set)")
		}
		return nil
	}
	if c.Dir == "" {
		return errors.New("webapp.dir must name the built web app (make webapp's webapp/dist, or the release's webapp archive unpacked)")
	}
	_, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("webapp.listen %q is not host:port: %w", c.Listen, err)
	}
	if c.Listen == api && port != "0" {
		return fmt.Errorf("webapp.listen %q is the local API's address; the app needs its own", c.Listen)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("webapp.tls_cert and webapp.tls_key go together")
	}
	return nil
}

// AppPath is where the app is served on webapp.listen.
const AppPath = "/app/"

// appCSP is sent with every file of the app. It is the policy of
// webapp/app/index.html's meta tag plus what only a header can say
// (frame-ancestors: no other site may frame the app to trick a tap).
// connect-src https: lets the page open WebTransport to any node. WebRTC,
// the page's other way to a node, is not governed by connect-src, and no
// directive limits it to some addresses (see SECURITY.md).
const appCSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; manifest-src 'self'; " +
	"style-src 'self'; img-src 'self'; connect-src 'self' https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// webappBuild is one build of the app, read whole at start and checked
// against its build.json, so the daemon serves exactly the build it
// logged, whatever happens to the directory afterwards.
type webappBuild struct {
	version string // SHA-256 of build.json, as the app shows it
	files   map[string][]byte
	sums    map[string]string
}

// loadWebapp reads dir's build.json and every file it lists, and refuses
// a directory whose files do not match it: a half-copied or changed app
// is not served.
func loadWebapp(dir string) (*webappBuild, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "build.json"))
	if err != nil {
		return nil, fmt.Errorf("webapp.dir %s has no build.json (is it a built app? run make webapp): %w", dir, err)
	}
	var m struct {
		Version int               `json:"version"`
		Files   map[string]string `json:"files"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Version != 1 || m.Files["index.html"] == "" {
		return nil, fmt.Errorf("webapp.dir %s: build.json is not a version 1 manifest listing index.html", dir)
	}
	sum := sha256.Sum256(raw)
	b := &webappBuild{version: hex.EncodeToString(sum[:]), files: map[string][]byte{"build.json": raw}, sums: map[string]string{"build.json": hex.EncodeToString(sum[:])}}
	for name, want := range m.Files {
		if name != path.Base(name) || strings.HasPrefix(name, ".") || name == "build.json" {
			return nil, fmt.Errorf("webapp.dir %s: build.json lists %q, which is not a plain file name", dir, name)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("webapp.dir %s: %w", dir, err)
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != want {
			return nil, fmt.Errorf("webapp.dir %s: %s does not match build.json (the directory is not one build: copy the whole app again)", dir, name)
		}
		b.files[name] = data
		b.sums[name] = want
	}
	return b, nil
}

// ServeHTTP serves the build under AppPath; "/" leads there. Only the
// listed files exist; each goes with the app's CSP and no-cache, so the
// service worker's update check always sees the current build, and with
// its SHA-256 as ETag, so an unchanged file costs a 304.
func (b *webappBuild) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "the web app's files are only read", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/" {
		http.Redirect(w, r, AppPath, http.StatusFound)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, AppPath)
	if name == "" {
		name = "index.html"
	}
	data, listed := b.files[name]
	if !ok || !listed {
		http.Error(w, "not part of the web app", http.StatusNotFound)
		return
	}
	h.Set("Content-Security-Policy", appCSP)
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", `"`+b.sums[name]+`"`)
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".wasm":
		ct = "application/wasm"
	case ".webmanifest":
		ct = "application/manifest+json"
	case ".js":
		ct = "text/javascript; charset=utf-8"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}

// serveWebapp starts the app's listener, if config.toml asks for one.
func (d *Daemon) serveWebapp() error {
	c := d.cfg.Webapp
	if c.Listen == "" {
		return nil
	}
	b, err := loadWebapp(c.Dir)
	if err != nil {
		return err
	}
	var cert tls.Certificate
	if c.TLSCert != "" {
		if cert, err = tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("webapp.tls_cert, tls_key: %w", err)
		}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("web app on %s: %w", c.Listen, err)
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	d.appLn = ln
	d.appSrv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.appSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("web app server stopped", "err", err)
		}
	}()
	d.log.Info("web app served", "url", scheme+"://"+ln.Addr().String()+AppPath, "version", b.version)
	if host, _, _ := net.SplitHostPort(c.Listen); scheme == "http" && !isLoopbackHost(host) {
		d.log.Warn("the web app is served over plain HTTP beyond this machine: phones run it only over HTTPS, so put a TLS proxy in front or set webapp.tls_cert and tls_key")
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// AppAddr is where the web app is served, or "" when it is not.
func (d *Daemon) AppAddr() string {
	if d.appLn == nil {
		return ""
	}
	return d.appLn.Addr().String()
}

func (d *Daemon) closeWebapp() {
	if d.appSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d.appSrv.Shutdown(ctx)
		cancel()
	}
}
