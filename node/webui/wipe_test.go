package webui_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ceiba-network/ceiba/node/api"
)

// TestBrowserWipe: someone at the door presses "Wipe this device" on a
// running daemon, confirms once, and is told it is done; by then the
// daemon has stopped and nothing of the home is left.
func TestBrowserWipe(t *testing.T) {
	n := startNode(t, "Colectivo Aurora")
	if _, err := n.d.CreateNetwork(context.Background(), api.NetworkRequest{Name: "Red de prueba"}); err != nil {
		t.Fatal(err)
	}
	// What "ceiba daemon" does after starting: wait until told to stop.
	stopped := make(chan error, 1)
	go func() { stopped <- n.d.Wait(context.Background()) }()

	b := newBrowser(t)
	ctx := b.tab("es")
	b.signIn(ctx, n)
	b.run(ctx, chromedp.Click(chromedp.CSS(`a[href="/wipe"]`)))
	b.waitLocation(ctx, "/wipe")
	b.run(ctx, chromedp.WaitVisible(chromedp.CSS("#wipe")))
	b.run(ctx, chromedp.Click(chromedp.CSS("#wipe")))
	// The confirmation page has a main h1 too: wait for the answer's text.
	b.waitText(ctx, "main", "Las claves y la copia del directorio están destruidas")
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("the daemon stopped with %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the daemon is still running two minutes after the wipe")
	}
	if _, err := os.Stat(n.home); !os.IsNotExist(err) {
		t.Fatalf("the home is still there after the wipe (%v)", err)
	}
	if resp, err := http.Get(n.url + "/v1/status"); err == nil {
		resp.Body.Close()
		t.Fatal("the API still answers after the wipe")
	}
}
