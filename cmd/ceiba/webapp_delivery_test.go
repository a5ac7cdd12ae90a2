package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	cdpnetwork "github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/skip2/go-qrcode"

	"github.com/ceiba-network/ceiba/internal/browsertest"
	"github.com/ceiba-network/ceiba/internal/wasmtest"
	"github.com/ceiba-network/ceiba/node/api"
)

// needChromium skips (or, in CI, fails) a browser test without Chromium.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the web app's browser tests need Chromium at %s (.ci/run installs it): %v", chromium, err)
		}
		t.Skipf("needs Chromium at %s (Debian: apt-get install chromium): %v", chromium, err)
	}
}

// appTab opens url in a new browser context of browser, as a phone whose
// browser asks for acceptLanguage, and records what would show the app
// misbehaving: an uncaught exception, a console message (except those
// allow accepts), or a request to another origin than url's (the app
// loads nothing from elsewhere; its CSP forbids it).
func appTab(t *testing.T, browser context.Context, url, acceptLanguage string, allow func(text string) bool) (context.Context, func() []string) {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	origin := u.Scheme + "://" + u.Host + "/"
	var mu sync.Mutex
	var problems []string
	tctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), chromedp.WithListener(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *cdpnetwork.EventRequestWillBeSent:
			if !strings.HasPrefix(e.Request.URL, origin) {
				problems = append(problems, "a request to "+e.Request.URL)
			}
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelVerbose || strings.HasSuffix(e.Entry.URL, "/favicon.ico") || (allow != nil && allow(e.Entry.Text+" "+e.Entry.URL)) {
				break // Chromium's advice on forms; the icon the SVG page lacks
			}
			problems = append(problems, string(e.Entry.Level)+": "+e.Entry.Text)
		}
	}))
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	tctx, cancel = context.WithTimeout(tctx, 15*time.Minute)
	t.Cleanup(cancel)
	if _, err := chromedp.Call(tctx, cdpnetwork.Enable, cdpnetwork.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
		UserAgent: "Mozilla/5.0 (Linux; Android 14) Mobile", AcceptLanguage: acceptLanguage,
	}); err != nil {
		t.Fatal(err)
	}
	do(t, tctx, chromedp.EmulateViewport(412, 915, chromedp.EmulateMobile), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#go")))
	return tctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// appVersion is what the app shows as its version for the build in dir:
// the SHA-256 of its build.json, in groups of four.
func appVersion(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "build.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	h := hex.EncodeToString(s[:])
	var g []string
	for i := 0; i < len(h); i += 4 {
		g = append(g, h[i:i+4])
	}
	return strings.Join(g, " ")
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// Issue 16, delivery: once installed, the app runs the build the person
// agreed to, whatever the host serves next. A host that changes a file
// without a new build.json gets nothing run; a host that publishes a new
// build (build.json and its files) gets it offered, with its version to
// compare with the release, and run only after "update" is pressed; "not
// now" keeps the old one; a build whose files do not match its build.json
// is not offered; a file the build does not list is not served.
func TestWebappUpdateNeedsConsent(t *testing.T) {
	nodeJS := wasmtest.Node(t, "../../webapp/node_modules/esbuild/package.json")
	needChromium(t)
	site := buildWebapp(t, nodeJS)
	host := filepath.Join(t.TempDir(), "host")
	copyDir(t, site, host)
	srv := httptest.NewServer(http.FileServer(http.Dir(host)))
	t.Cleanup(srv.Close)
	v1 := appVersion(t, host)

	tab, problems := appTab(t, startChromium(t), srv.URL+"/", "en", regexp.MustCompile(`extra\.txt`).MatchString)
	if got := waitText(t, tab, "#version", v1); got != v1 {
		t.Fatalf("the app shows version %q, want %q (build.json's SHA-256)", got, v1)
	}
	marked := func() bool {
		t.Helper()
		b, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.querySelector('meta[name="ceiba-test"]') !== null`))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	reload := func() {
		t.Helper()
		do(t, tab, chromedp.Navigate(srv.URL+"/?lang=en"), chromedp.WaitVisible(chromedp.CSS("#go")))
		waitText(t, tab, "#version", " ")
	}
	changeIndex := func(mark string) {
		t.Helper()
		p := filepath.Join(host, "index.html")
		b, err := os.ReadFile(filepath.Join(site, "index.html"))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("<title>"), []byte(`<meta name="ceiba-test" content="`+mark+`"><title>`), 1)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func() string {
		t.Helper()
		out, err := exec.Command(nodeJS, "../../webapp/build.mjs", "--manifest", host).CombinedOutput()
		if err != nil {
			t.Fatalf("build.mjs --manifest: %v\n%s", err, out)
		}
		return appVersion(t, host)
	}
	updateShown := func() bool {
		t.Helper()
		time.Sleep(2 * time.Second) // the worker's check of the host
		b, err := chromedp.Run(tab, chromedp.Evaluate[bool](`!document.getElementById('update').hidden`))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// The host changes index.html but not build.json: the kept build runs.
	changeIndex("changed")
	os.WriteFile(filepath.Join(host, "extra.txt"), []byte("not the app's"), 0o644)
	reload()
	if marked() {
		t.Fatal("a page the host changed was run without being offered")
	}
	if updateShown() {
		t.Fatal("an update was offered though build.json did not change")
	}
	if st, err := chromedp.Run(tab, chromedp.Evaluate[int](`fetch('extra.txt').then((r) => r.status)`, chromedp.EvalAwaitPromise)); err != nil || st != 404 {
		t.Fatalf("a file the build does not list, fetched by the page: %d (%v), want 404 from the worker", st, err)
	}

	// A new build whose index.html does not match its build.json: not offered.
	changeIndex("v2")
	manifest()
	changeIndex("v2-tampered")
	reload()
	if marked() || updateShown() {
		t.Fatal("a build whose files do not match its build.json was run or offered")
	}

	// A real new build: offered with its version, not taken on "not now".
	changeIndex("v2")
	v2 := manifest()
	reload()
	if marked() {
		t.Fatal("a new build ran before the person agreed")
	}
	if got := waitText(t, tab, "#offeredVersion", v2); got != v2 {
		t.Fatalf("the update offered shows %q, want %q", got, v2)
	}
	waitText(t, tab, "#update", "A new version of the app is offered")
	if got := waitText(t, tab, "#version", " "); got != v1 {
		t.Fatalf("while the update is only offered, the app shows version %q, want %q", got, v1)
	}
	screenshot(t, tab, "webapp-update-en.png")
	do(t, tab, chromedp.Click(chromedp.CSS("#skipUpdate")))
	reload()
	if marked() {
		t.Fatal("the new build ran after \"not now\"")
	}

	// "Update": the new build runs, and is the version shown.
	waitText(t, tab, "#offeredVersion", v2)
	do(t, tab, chromedp.Click(chromedp.CSS("#takeUpdate")))
	if got := waitText(t, tab, "#version", v2); got != v2 {
		t.Fatalf("after updating the app shows %q, want %q", got, v2)
	}
	if !marked() {
		t.Fatal("after \"update\" the new build's page is not the one running")
	}
	if b, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById('swChanged').hidden`)); err != nil || !b {
		t.Errorf("an update the person asked for warned that the worker was replaced (%v)", err)
	}
	for _, p := range problems() {
		t.Errorf("the browser reported %s", p)
	}
}

// y4m writes a video file Chromium's fake camera plays: a QR code of
// text on white, as a phone's camera would see one held up to it.
func y4m(t *testing.T, text string) string {
	t.Helper()
	q, err := qrcode.New(text, qrcode.Low)
	if err != nil {
		t.Fatal(err)
	}
	const w, h = 640, 480
	frame := image.NewGray(image.Rect(0, 0, w, h))
	draw.Draw(frame, frame.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	code := q.Image(440)
	off := image.Pt((w-440)/2, (h-440)/2)
	draw.Draw(frame, code.Bounds().Add(off), code, image.Point{}, draw.Src)
	var b bytes.Buffer
	fmt.Fprintf(&b, "YUV4MPEG2 W%d H%d F10:1 Ip A1:1 C420jpeg\n", w, h)
	chroma := bytes.Repeat([]byte{128}, w*h/4)
	for range 3 {
		b.WriteString("FRAME\n")
		b.Write(frame.Pix)
		b.Write(chroma)
		b.Write(chroma)
	}
	p := filepath.Join(t.TempDir(), "camera.y4m")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue 16, delivery and QR: ceiba daemon serves the built app ([webapp]
// in config.toml), the browser installs it from there, and the invite
// code's QR is read with the camera: Chromium's fake camera plays a video
// of the QR, and the app puts the code in the field. A QR that is not an
// invite code gets the malformed code's message and leaves the field
// empty.
func TestWebappFromDaemonScansInviteQR(t *testing.T) {
	nodeJS := wasmtest.Node(t, "../../webapp/node_modules/esbuild/package.json")
	needChromium(t)
	site := buildWebapp(t, nodeJS)
	home, apiPort := initHome(t)
	appAddr := "127.0.0.1:" + freePort(t)
	cfg, err := os.OpenFile(filepath.Join(home, "config.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(cfg, "\n[webapp]\n  dir = %q\n  listen = %q\n", site, appAddr)
	cfg.Close()
	startDaemon(t, home, apiPort)
	mustRun(t, home, "network", "create", "--name", "Red de prueba")
	var inv api.Invite
	if err := json.Unmarshal([]byte(mustRun(t, home, "--json", "invite", "create", "--role", "member", "--expires", "1h")), &inv); err != nil {
		t.Fatal(err)
	}
	appURL := "http://" + appAddr + "/app/"

	scan := func(qr string) (code, errText string) {
		t.Helper()
		opts := append(browsertest.Options(t.TempDir()),
			chromedp.Flag("use-fake-ui-for-media-stream", true),
			chromedp.Flag("use-fake-device-for-media-stream", true),
			chromedp.Flag("use-file-for-fake-video-capture", y4m(t, qr)),
		)
		alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
		defer cancel()
		browser, cancel := chromedp.NewContext(alloc)
		defer cancel()
		if err := chromedp.Do(browser); err != nil {
			t.Fatalf("starting %s: %v", chromium, err)
		}
		tab, problems := appTab(t, browser, appURL, "en", nil)
		// Served by the daemon, installed by the worker: the version shown
		// is the build's.
		if v := appVersion(t, site); waitText(t, tab, "#version", v) != v {
			t.Fatal("the app from the daemon shows another version than its build's")
		}
		do(t, tab, chromedp.Click(chromedp.CSS("#scan")))
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			state, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`[document.getElementById('code').value, document.getElementById('error').hidden ? '' : document.getElementById('errorText').textContent, String(document.getElementById('scanner').hidden)]`))
			if err != nil {
				t.Fatal(err)
			}
			if state[2] == "true" { // the scanner closed: it read something
				for _, p := range problems() {
					t.Errorf("the browser reported %s", p)
				}
				return state[0], state[1]
			}
		}
		body, _ := chromedp.Run(tab, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("the camera's QR was not read within a minute; page:\n%s", body)
		return "", ""
	}

	if code, errText := scan(inv.Code); code != inv.Code || errText != "" {
		t.Fatalf("scanning the invite's QR filled the field with %q (error %q), want the code", code, errText)
	}
	code, errText := scan("https://example.org/not-an-invite")
	if code != "" || !strings.Contains(errText, "The invite code is not valid") {
		t.Fatalf("scanning a QR that is not an invite: field %q, error %q; want the malformed code's message and an empty field", code, errText)
	}
}
