package webui_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ceiba-network/ceiba/directory"
)

// These run the UI in a real browser over the fake backend: they test the
// pages, forms and script, not the network (e2e_test.go does that).

func TestBrowserSearchAndDetail(t *testing.T) {
	srv := newServer(t, newFake(t, false))
	b := newBrowser(t)
	es := b.tab("es-MX,es;q=0.9")
	b.run(es,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#q")),
		chromedp.SendKeys(chromedp.CSS("#q"), "asesoria"),
		chromedp.Submit(chromedp.CSS("#q")),
	)
	b.waitLocation(es, "q=asesoria")
	if got := b.text(es, "ol.results"); !strings.Contains(got, "Asesoría jurídica para personas defensoras") || strings.Contains(got, "Albergue temporal") {
		t.Fatalf("results for asesoria: %q", got)
	}
	if got := b.text(es, ".statusbar"); !strings.Contains(got, "En línea") || !strings.Contains(got, "Copia local al día") {
		t.Errorf("status bar: %q", got)
	}
	b.run(es, chromedp.Click(chromedp.CSS("ol.results h3 a")), chromedp.WaitVisible(chromedp.CSS("section.trust")))
	if got := b.text(es, "h1"); got != "Asesoría jurídica para personas defensoras" {
		t.Errorf("detail heading %q", got)
	}
	if got := b.text(es, "section.trust"); !strings.Contains(got, "Verificado") {
		t.Errorf("verification not explained: %q", got)
	}
	if signal := b.attr(es, `a[href^="https://signal.me/"]`, "href"); signal != "https://signal.me/#p/+525512345678" {
		t.Errorf("Signal link %q", signal)
	}
	// The optional script ran under the CSP and added copy buttons.
	if got := b.text(es, "button.copybtn"); got != "Copiar" {
		t.Errorf("copy button %q", got)
	}
	// The filters work without typing anything.
	b.run(es,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SetValue(chromedp.CSS(`select[name="category"]`), "shelter"),
		chromedp.Click(chromedp.CSS(".qrow button")),
	)
	b.waitLocation(es, "category=shelter")
	if got := b.text(es, "ol.results"); !strings.Contains(got, "Albergue temporal Casa Ceiba") || strings.Contains(got, "Asesoría jurídica") {
		t.Errorf("shelter filter: %q", got)
	}

	en := b.tab("en-US,en;q=0.9")
	b.run(en, chromedp.Navigate(srv.URL+"/?q=shelter"), chromedp.WaitVisible(chromedp.CSS("ol.results")))
	if got := b.text(en, "main"); !strings.Contains(got, "Find a trusted service") || !strings.Contains(got, "Shelter") {
		t.Errorf("English page: %q", got)
	}
	// The switch link, without JavaScript's help, goes to Spanish.
	b.run(en, chromedp.Click(chromedp.CSS("a.lang")))
	b.waitLocation(en, "lang=es")
	if got := b.text(en, "h1"); got != "Busca un servicio de confianza" {
		t.Errorf("after the language switch: %q", got)
	}
	b.checkClean(srv.URL)
}

func TestBrowserOrganizationPublishes(t *testing.T) {
	f := newFake(t, false)
	srv := newServer(t, f)
	b := newBrowser(t)
	ctx := b.tab("es")
	b.run(ctx, signInToFake(srv.URL, `a[href="/org/edit"]`)...)
	b.run(ctx,
		chromedp.Click(chromedp.CSS(`a[href="/org/edit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Acompañamiento en audiencias"),
		chromedp.Click(chromedp.CSS(`input[name="categories"][value="accompaniment"]`)),
		chromedp.SendKeys(chromedp.CSS("#languages"), "es, mam"),
		chromedp.SendKeys(chromedp.CSS(`input[name="area0_city"]`), "Tapachula"),
		chromedp.SendKeys(chromedp.CSS(`input[name="area0_country"]`), "MEX"), // a three-letter code: refused
		chromedp.SendKeys(chromedp.CSS(`input[name="contact0_value"]`), "+52 962 000 0000"),
		chromedp.Click(chromedp.CSS(`button[value="publish"]`)),
		chromedp.WaitVisible(chromedp.CSS("p.err")),
	)
	if got := b.text(ctx, "p.err"); !strings.Contains(got, "código de dos letras") {
		t.Fatalf("field error: %q", got)
	}
	b.run(ctx,
		chromedp.SetValue(chromedp.CSS(`input[name="area0_country"]`), "MX"),
		chromedp.Click(chromedp.CSS(`button[value="publish"]`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice.ok")),
	)
	if got := b.text(ctx, "h1"); got != "Acompañamiento en audiencias" {
		t.Fatalf("after publishing: %q", got)
	}
	b.run(ctx, chromedp.Navigate(srv.URL+"/?q=audiencias"), chromedp.WaitVisible(chromedp.CSS("ol.results h3 a")))
	if got := b.text(ctx, "ol.results"); !strings.Contains(got, "Tapachula, México") || !strings.Contains(got, "mam") {
		t.Errorf("published entry in search: %q", got)
	}
	b.checkClean(srv.URL)
}

// Issue 14: the steward's page shows a key rotation in progress, with how
// many of its pages this node holds, and then complete, as "ceiba status"
// does.
func TestBrowserStewardSeesRotationProgress(t *testing.T) {
	f := newFake(t, true)
	f.setRotation(directory.Rotation{Epoch: 2, Pages: 190, Held: 182})
	srv := newServer(t, f)
	b := newBrowser(t)
	ctx := b.tab("es")
	b.run(ctx, signInToFake(srv.URL, `a[href="/steward"]`)...)
	b.run(ctx,
		chromedp.Navigate(srv.URL+"/steward"),
		chromedp.WaitVisible(chromedp.CSS("#rotation")),
	)
	if got := b.text(ctx, "#rotation"); got != "época 2 en curso: 182 de 190 páginas de paquetes de clave en este nodo" {
		t.Fatalf("rotation in progress shown as %q", got)
	}
	if got := b.text(ctx, "#rotation .badge.warn"); !strings.Contains(got, "en curso") {
		t.Errorf("a rotation in progress is not marked as a warning: %q", got)
	}
	f.setRotation(directory.Rotation{Epoch: 2, Pages: 190, Held: 190})
	b.run(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#rotation")))
	if got := b.text(ctx, "#rotation"); got != "época 2 completa: las 190 páginas de paquetes de clave están en este nodo" {
		t.Fatalf("complete rotation shown as %q", got)
	}
	b.checkClean(srv.URL)
}

// signInToFake signs in to the fake backend's UI at base with the test
// token and waits for the link sel of the signed-in page.
func signInToFake(base, sel string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(base + "/login"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(sel)),
	}
}
