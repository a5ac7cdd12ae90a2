package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestTokenOnlyWhereNeeded: the client sent the write token with every
// request, reads included, so a local process that bound the API port
// while the daemon was down captured it from a "ceiba status" (found in
// review, session 39). Reads now go without it; writes and the export
// carry it.
func TestTokenOnlyWhereNeeded(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get(TokenHeader)
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c := &Client{Base: srv.URL, Token: "secret-write-token"}
	for _, tc := range []struct {
		method, path string
		want         string
	}{
		{http.MethodGet, "/v1/status", ""},
		{http.MethodGet, "/v1/search?q=abogada", ""},
		{http.MethodGet, "/v1/entries", ""},
		{http.MethodGet, "/v1/export", "secret-write-token"},
		{http.MethodPost, "/v1/entries", "secret-write-token"},
		{http.MethodDelete, "/v1/entries/abc", "secret-write-token"},
		{http.MethodPost, "/v1/wipe", "secret-write-token"},
	} {
		got = "unset"
		if err := c.Do(context.Background(), tc.method, tc.path, nil, nil); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s %s carried token %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}
