package webui_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ceiba-network/ceiba/internal/browsertest"
)

const chromium = browsertest.Chromium

// browser is one test's view of a shared headless Chromium: its tabs, the
// requests their pages made, and every console or CSP complaint, so tests
// can prove the UI loads nothing from elsewhere and breaks no policy.
type browser struct {
	t    *testing.T
	root context.Context

	mu       sync.Mutex
	requests []string
	problems []string
}

// One Chromium serves every test, each in its own browser contexts (no
// shared cookies); starting one per test would double the package's time.
var (
	chromiumOnce sync.Once
	chromiumRoot context.Context
	chromiumErr  error
	chromiumStop = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	chromiumStop()
	os.Exit(code)
}

func startChromium() {
	if _, err := os.Stat(chromium); err != nil {
		chromiumErr = fmt.Errorf("the browser tests need Chromium at %s (Debian: apt-get install chromium; .ci/run installs it): %w", chromium, err)
		return
	}
	profile, err := os.MkdirTemp("", "ceiba-webui-chromium-")
	if err != nil {
		chromiumErr = err
		return
	}
	opts := append(browsertest.Options(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(412, 915),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(alloc)
	chromiumStop = func() { cancelRoot(); cancelAlloc(); os.RemoveAll(profile) }
	// The first call starts the browser; it must not carry a timeout, or
	// the timeout would end the browser.
	if err := chromedp.Do(root); err != nil {
		chromiumErr = fmt.Errorf("start %s: %w", chromium, err)
		return
	}
	chromiumRoot = root
}

// newBrowser fails the test, rather than skipping it, when Chromium is
// missing: CI installs it, so its absence is a broken machine.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	chromiumOnce.Do(startChromium)
	if chromiumErr != nil {
		t.Fatal(chromiumErr)
	}
	return &browser{t: t, root: chromiumRoot}
}

func (b *browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, e.Request.URL)
	case *log.EventEntryAdded:
		b.problems = append(b.problems, string(e.Entry.Level)+": "+e.Entry.Text+" "+e.Entry.URL)
	case *runtime.EventExceptionThrown:
		b.problems = append(b.problems, "exception: "+e.ExceptionDetails.Text)
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
			b.problems = append(b.problems, "console "+string(e.Type))
		}
	}
}

// tab opens a tab with its own cookies, whose requests carry
// acceptLanguage, sized like a phone.
func (b *browser) tab(acceptLanguage string) context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext(), chromedp.WithListener(b.listen))
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open tab: %v", err)
	}
	ctx, cancel = context.WithTimeout(ctx, 50*time.Second)
	b.t.Cleanup(cancel)
	b.must(chromedp.Call(ctx, network.Enable, network.EnableParams{}))
	b.must(chromedp.Call(ctx, log.Enable, cdp.Empty{}))
	b.must(chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": acceptLanguage}}))
	b.run(ctx, chromedp.EmulateViewport(412, 915, chromedp.EmulateMobile))
	return ctx
}

func (b *browser) must(_ cdp.Empty, err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// run runs steps with their own deadline, so that when one fails the tab
// can still say what page it was on.
func (b *browser) run(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		b.t.Fatalf("browser: %v\non %s:\n%s", err, loc, page)
	}
}

// text returns the visible text of the first element matching the CSS
// selector sel.
func (b *browser) text(ctx context.Context, sel string) string {
	b.t.Helper()
	return retry(b, "text of "+sel, func() (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	})
}

func (b *browser) attr(ctx context.Context, sel, name string) string {
	b.t.Helper()
	return retry(b, "attribute "+name+" of "+sel, func() (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		r, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
		return r.Value, err
	})
}

// waitLocation waits until the tab's address contains part: a click that
// navigates returns before the new page is there, and the old page may
// already match the next wait.
func (b *browser) waitLocation(ctx context.Context, part string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil && strings.Contains(loc, part) {
			b.run(ctx, chromedp.WaitReady(chromedp.CSS("footer")))
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the tab never reached an address with %q (at %s, %v)", part, loc, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitText waits until the visible text of sel contains want: a form
// that posts and answers on the same address leaves the old page, which
// may match a selector the new one has too, in place until the answer
// comes.
func (b *browser) waitText(ctx context.Context, sel, want string) string {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.AtLeast(0)))
		if err == nil && strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s never said %q; it says %q (%v)", sel, want, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// retry repeats a read a few times: right after a navigation, or while the
// copy script adds its buttons, Chromium can drop the node a query just
// found ("No node with given id found").
func retry(b *browser, what string, read func() (string, error)) string {
	b.t.Helper()
	var err error
	for range 3 {
		var s string
		if s, err = read(); err == nil {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("%s: %v", what, err)
	return ""
}

// checkClean fails the test if a page loaded anything from outside the
// given origins or the browser reported a policy violation or a script
// error.
func (b *browser) checkClean(origins ...string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.requests) == 0 {
		b.t.Fatal("no requests were recorded; the network listener is broken")
	}
	for _, u := range b.requests {
		if strings.HasPrefix(u, "data:") {
			// Chromium's own controls (the date picker's icon) load as
			// data: URLs; the CSP would block any a page asked for.
			continue
		}
		ok := false
		for _, o := range origins {
			ok = ok || strings.HasPrefix(u, o+"/")
		}
		if !ok {
			b.t.Errorf("a page requested %s, outside this node", u)
		}
	}
	for _, p := range b.problems {
		// A form answered 422 or a page 403 is logged as a failed load;
		// the tests check those pages themselves.
		if strings.Contains(p, "Failed to load resource: the server responded with a status of 4") && slices.ContainsFunc(origins, func(o string) bool { return strings.Contains(p, o+"/") }) {
			continue
		}
		b.t.Errorf("browser reported: %s", p)
	}
}

// screenshot renders a full-page PNG and, only when
// CEIBA_WRITE_SCREENSHOTS is set, writes it to docs/screenshots for the
// README: `make test` leaves the tree as it found it.
//
//	CEIBA_WRITE_SCREENSHOTS=1 go test -run TestBrowserEndToEnd ./node/webui/
func (b *browser) screenshot(ctx context.Context, name string) {
	b.t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		b.t.Fatalf("screenshot %s is not a PNG", name)
	}
	if os.Getenv("CEIBA_WRITE_SCREENSHOTS") == "" {
		return
	}
	dir := filepath.Join("..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
