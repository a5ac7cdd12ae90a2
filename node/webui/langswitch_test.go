package webui_test

import (
	"html"
	"net/url"
	"regexp"
	"testing"
)

// TestLangSwitchStaysOnTheNode: the language switch link was built from
// the decoded request path, so /%2F%2Fevil.example/x rendered
// href="///evil.example/x?lang=es", which a browser opens as another site
// (found in review, session 39). Resolved against the page, the link must
// keep the host, the path and the query.
func TestLangSwitchStaysOnTheNode(t *testing.T) {
	srv := newServer(t, newFake(t, false))
	c := newClient(t, srv, "en")
	for _, path := range []string{"/%2F%2Fevil.example/x", "/%5C%5Cevil.example/x", "/?q=abogada"} {
		_, body, _ := c.get(path)
		m := regexp.MustCompile(`class="lang" href="([^"]*)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("%s: no language switch link", path)
		}
		page, err := url.Parse(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		href, err := url.Parse(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		// Browsers read "///host" as scheme-relative, which url.URL does
		// not: no path at all in the link is the sure way.
		if href.Scheme != "" || href.Host != "" || href.Path != "" {
			t.Errorf("%s: the language switch %q names a path or host", path, m[1])
		}
		to := page.ResolveReference(href)
		if to.Host != page.Host || to.EscapedPath() != page.EscapedPath() || to.Query().Get("lang") != "es" {
			t.Errorf("%s: the language switch %q leads to %s", path, m[1], to)
		}
		if page.Query().Get("q") != to.Query().Get("q") {
			t.Errorf("%s: the language switch %q drops the query", path, m[1])
		}
	}
}
