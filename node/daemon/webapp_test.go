package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/internal/testcert"
)

// fakeApp writes a directory shaped like make webapp's output: a few
// files and the build.json that lists them, plus one file it does not list.
func fakeApp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"index.html": "<!doctype html><title>Ceiba</title>",
		"app.js":     "console.log('app')",
		"core.wasm":  "\x00asm\x01\x00\x00\x00",
		"sw.js":      "// worker",
	}
	sums := map[string]string{}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256([]byte(body))
		sums[name] = hex.EncodeToString(s[:])
	}
	m, _ := json.Marshal(map[string]any{"version": 1, "files": sums})
	if err := os.WriteFile(filepath.Join(dir, "build.json"), m, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not the app's"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func appGet(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestDaemonServesTheWebapp(t *testing.T) {
	dir := fakeApp(t)
	d := startDaemonWith(t, "org", func(c *Config) {
		c.Webapp = WebappConfig{Dir: dir, Listen: "127.0.0.1:0"}
	})
	if d.AppAddr() == "" || d.AppAddr() == d.APIAddr() {
		t.Fatalf("the app's address is %q (API %q): want a listener of its own", d.AppAddr(), d.APIAddr())
	}
	// The app's files are read at start: a change afterwards is not served.
	os.WriteFile(filepath.Join(dir, "app.js"), []byte("steal()"), 0o644)

	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + d.AppAddr()
	res, body := appGet(t, c, base+"/app/")
	if res.StatusCode != 200 || !strings.Contains(body, "<title>Ceiba</title>") {
		t.Fatalf("GET /app/: %d %q", res.StatusCode, body)
	}
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("the page's CSP header is %q", csp)
	}
	if res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers: %v", res.Header)
	}
	res, body = appGet(t, c, base+"/app/app.js")
	if body != "console.log('app')" || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET app.js: %q (%s), want the build's file as it was at start", body, res.Header.Get("Content-Type"))
	}
	if res, _ = appGet(t, c, base+"/app/core.wasm"); res.Header.Get("Content-Type") != "application/wasm" {
		t.Fatalf("core.wasm's type is %q", res.Header.Get("Content-Type"))
	}
	etag := res.Header.Get("ETag")
	if res, _ = appGet(t, c, base+"/app/core.wasm", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Fatalf("an unchanged file asked again with its ETag: %d, want 304", res.StatusCode)
	}
	if res, _ = appGet(t, c, base+"/app/build.json"); res.StatusCode != 200 {
		t.Fatalf("build.json: %d", res.StatusCode)
	}
	for _, p := range []string{"/app/notes.txt", "/app/../config.toml", "/v1/status", "/app/x/index.html"} {
		if res, _ = appGet(t, c, base+p); res.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s: %d, want 404 (not a file of the build)", p, res.StatusCode)
		}
	}
	if res, _ = appGet(t, c, base+"/"); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/app/" {
		t.Fatalf("GET /: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	post, err := c.Post(base+"/app/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", post.StatusCode)
	}
	// The local API, which holds the web UI, does not serve the app.
	if res, _ = appGet(t, c, "http://"+d.APIAddr()+"/app/"); res.StatusCode == 200 && res.Header.Get("Content-Security-Policy") == appCSP {
		t.Fatal("the local API serves the app too")
	}
}

func TestDaemonRefusesAChangedWebapp(t *testing.T) {
	h := Home{Dir: filepath.Join(t.TempDir(), "org")}
	if _, err := Init(h, InitOptions{Name: "org", Passphrase: testPassphrase, WorkFactor: 10, Local: true}); err != nil {
		t.Fatal(err)
	}
	cfg, err := h.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	start := func(w WebappConfig) error {
		cfg.Webapp = w
		if err := h.SaveConfig(cfg); err != nil {
			t.Fatal(err)
		}
		d, err := Start(context.Background(), Options{Home: h, Passphrase: testPassphrase, WorkFactor: 10, Logger: testLogger("org"), SyncInterval: time.Second})
		if err == nil {
			d.Close()
		}
		return err
	}
	changed := fakeApp(t)
	os.WriteFile(filepath.Join(changed, "app.js"), []byte("steal()"), 0o644)
	missing := fakeApp(t)
	os.Remove(filepath.Join(missing, "core.wasm"))
	unlisted := fakeApp(t)
	os.Remove(filepath.Join(unlisted, "build.json"))
	for _, c := range []struct {
		w    WebappConfig
		want string
	}{
		{WebappConfig{Dir: changed, Listen: "127.0.0.1:0"}, "app.js does not match build.json"},
		{WebappConfig{Dir: missing, Listen: "127.0.0.1:0"}, "core.wasm"},
		{WebappConfig{Dir: unlisted, Listen: "127.0.0.1:0"}, "has no build.json"},
		{WebappConfig{Dir: changed}, "webapp.listen is needed"},
		{WebappConfig{Listen: "127.0.0.1:0"}, "webapp.dir must name"},
		{WebappConfig{Dir: changed, Listen: "127.0.0.1:0", TLSCert: "cert.pem"}, "go together"},
	} {
		err := start(c.w)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("[webapp] %+v: err = %v, want %q", c.w, err, c.want)
		}
	}
	// Once fixed, the same home starts.
	if err := start(WebappConfig{Dir: fakeApp(t), Listen: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
}

// The header and the page's meta tag are one policy: a source the page
// needs and only one of them allows would be refused by the other.
func TestWebappCSPHeaderIsThePagesPolicy(t *testing.T) {
	b, err := os.ReadFile("../../webapp/app/index.html")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`http-equiv="Content-Security-Policy" content="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("index.html has no CSP meta tag")
	}
	if want := string(m[1]) + "; frame-ancestors 'none'"; appCSP != want {
		t.Fatalf("the server's CSP\n%s\nis not the page's plus frame-ancestors:\n%s", appCSP, want)
	}
}

// With tls_cert and tls_key the app is served over HTTPS only, as phones
// need it; a wrong key file is an error at start, naming the settings.
func TestDaemonServesTheWebappOverTLS(t *testing.T) {
	certFile, keyFile, cert := testcert.SelfSigned(t)
	d := startDaemonWith(t, "org", func(c *Config) {
		c.Webapp = WebappConfig{Dir: fakeApp(t), Listen: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile}
	})
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, body := appGet(t, c, "https://"+d.AppAddr()+"/app/")
	if res.StatusCode != 200 || !strings.Contains(body, "<title>Ceiba</title>") {
		t.Fatalf("GET https://…/app/: %d %q", res.StatusCode, body)
	}
	// Plain HTTP gets Go's TLS server's 400, or a closed connection: no page.
	if res, err := http.Get("http://" + d.AppAddr() + "/app/"); err == nil {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(b), "<title>Ceiba</title>") {
			t.Fatalf("the app was served over plain HTTP too: %d", res.StatusCode)
		}
	}

	h := Home{Dir: filepath.Join(t.TempDir(), "bad")}
	if _, err := Init(h, InitOptions{Name: "bad", Passphrase: testPassphrase, WorkFactor: 10, Local: true}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := h.LoadConfig()
	cfg.Webapp = WebappConfig{Dir: fakeApp(t), Listen: "127.0.0.1:0", TLSCert: certFile, TLSKey: certFile}
	if err := h.SaveConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if d, err := Start(context.Background(), Options{Home: h, Passphrase: testPassphrase, WorkFactor: 10, Logger: testLogger("bad")}); err == nil {
		d.Close()
		t.Fatal("a certificate given as its own key was accepted")
	} else if !strings.Contains(err.Error(), "webapp.tls_cert, tls_key") {
		t.Fatalf("a bad key file: %v, want it to name webapp.tls_cert, tls_key", err)
	}
}
