package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/node/webui"
)

// MaxBody bounds every request body; an import bundle is the largest.
// The CLI refuses a larger file before reading it.
const MaxBody = 64 << 20

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	// One rule says which routes need the token, here and in the client
	// (which sends it on those only): api.NeedsToken.
	route := func(pattern string, h http.HandlerFunc) {
		method, path, _ := strings.Cut(pattern, " ")
		if api.NeedsToken(method, path) {
			mux.Handle(pattern, d.requireToken(h))
			return
		}
		mux.Handle(pattern, h)
	}

	route("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { reply(w, d.Status(), nil) })
	route("GET /v1/search", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		res, err := d.Search(directory.Query{Text: q.Get("q"), Category: q.Get("category"), Language: q.Get("language"), Area: q.Get("area"), Limit: limit})
		reply(w, res, err)
	})
	route("GET /v1/entry", func(w http.ResponseWriter, r *http.Request) {
		e, err := d.Show(r.URL.Query().Get("ref"))
		reply(w, e, err)
	})
	route("GET /v1/entries", func(w http.ResponseWriter, r *http.Request) {
		es, err := d.Mine()
		reply(w, es, err)
	})
	route("GET /v1/proposals", func(w http.ResponseWriter, r *http.Request) {
		ps, err := d.Proposals()
		reply(w, ps, err)
	})
	route("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		ps, err := d.Peers()
		reply(w, ps, err)
	})
	route("GET /v1/key", func(w http.ResponseWriter, r *http.Request) { reply(w, d.PublicKeyDoc(), nil) })

	route("POST /v1/entries", func(w http.ResponseWriter, r *http.Request) {
		var req api.PublishRequest
		if !decode(w, r, &req) {
			return
		}
		e, err := d.Publish(r.Context(), req)
		reply(w, e, err)
	})
	route("DELETE /v1/entries/{id}", func(w http.ResponseWriter, r *http.Request) {
		e, err := d.Remove(r.Context(), r.PathValue("id"))
		reply(w, e, err)
	})
	route("POST /v1/network", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkRequest
		if !decode(w, r, &req) {
			return
		}
		res, err := d.CreateNetwork(r.Context(), req)
		reply(w, res, err)
	})
	route("POST /v1/draft/sign", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkRequest
		if !decode(w, r, &req) {
			return
		}
		res, err := d.SignDraft(req.Draft)
		reply(w, res, err)
	})
	route("POST /v1/invites", func(w http.ResponseWriter, r *http.Request) {
		var req api.InviteRequest
		if !decode(w, r, &req) {
			return
		}
		inv, err := d.CreateInvite(req)
		reply(w, inv, err)
	})
	route("POST /v1/invites/accept", func(w http.ResponseWriter, r *http.Request) {
		var req api.AcceptRequest
		if !decode(w, r, &req) {
			return
		}
		st, err := d.AcceptInvite(r.Context(), req)
		reply(w, st, err)
	})
	route("POST /v1/proposals", func(w http.ResponseWriter, r *http.Request) {
		var req api.ProposeRequest
		if !decode(w, r, &req) {
			return
		}
		p, err := d.Propose(r.Context(), req)
		reply(w, p, err)
	})
	route("POST /v1/proposals/{id}/approve", func(w http.ResponseWriter, r *http.Request) {
		p, err := d.Approve(r.Context(), r.PathValue("id"))
		reply(w, p, err)
	})
	route("POST /v1/revoke/self", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]bool{"revoked": true}, d.RevokeSelf(r.Context()))
	})
	route("POST /v1/revoke/certificate", func(w http.ResponseWriter, r *http.Request) {
		cert, ok := readBody(w, r)
		if !ok {
			return
		}
		reply(w, map[string]bool{"revoked": true}, d.SubmitCertificate(r.Context(), cert))
	})
	route("POST /v1/rotate", func(w http.ResponseWriter, r *http.Request) {
		p, err := d.Rotate(r.Context())
		reply(w, p, err)
	})
	// Export is a write-level operation: the bundle holds the whole
	// directory, so it takes the token like anything that changes state.
	route("GET /v1/export", func(w http.ResponseWriter, r *http.Request) {
		b, err := d.Export()
		if err != nil {
			reply(w, nil, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	})
	route("POST /v1/import", func(w http.ResponseWriter, r *http.Request) {
		b, ok := readBody(w, r)
		if !ok {
			return
		}
		res, err := d.Import(r.Context(), b)
		reply(w, res, err)
	})
	// The panic button: keys and copy destroyed, then the daemon exits.
	route("POST /v1/wipe", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]bool{"wiped": true}, d.WipeAndStop())
	})
	d.opsRoutes(mux)
	// The web UI answers everything the API does not.
	mux.Handle("/", webui.New(d, d.token))
	return d.checkHost(mux)
}

// checkHost refuses requests whose Host header is not this loopback
// address, so a web page cannot reach the API through DNS rebinding, and
// refuses cross-origin writes.
func (d *Daemon) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.allowedHost(r.Host) {
			fail(w, http.StatusMisdirectedRequest, "requests must be addressed to this node's local API (Host "+d.ln.Addr().String()+")")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !d.allowedOrigin(o) {
				fail(w, http.StatusForbidden, "cross-origin requests are refused")
				return
			}
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func (d *Daemon) allowedHost(host string) bool {
	_, port, err := net.SplitHostPort(d.ln.Addr().String())
	if err != nil {
		return false
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil || p != port {
		return false
	}
	return h == "127.0.0.1" || h == "localhost" || h == "::1"
}

func (d *Daemon) allowedOrigin(origin string) bool {
	rest, ok := strings.CutPrefix(origin, "http://")
	return ok && d.allowedHost(rest)
}

func (d *Daemon) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get(api.TokenHeader)
		if got == "" {
			fail(w, http.StatusUnauthorized, "this request changes the node and needs the API token (header "+api.TokenHeader+")")
			return
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(d.token)) != 1 {
			fail(w, http.StatusForbidden, "wrong API token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(w, http.StatusRequestEntityTooLarge, "request body too large")
			return false
		}
		fail(w, http.StatusBadRequest, "request body is not valid JSON for this call: "+err.Error())
		return false
	}
	return true
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		fail(w, http.StatusRequestEntityTooLarge, "request body too large")
		return nil, false
	}
	return b, true
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		var ue *userError
		var rej *directory.RejectError
		switch {
		case errors.As(err, &ue):
			fail(w, http.StatusBadRequest, ue.msg)
		case errors.As(err, &rej):
			fail(w, http.StatusUnprocessableEntity, rej.Error())
		case errors.Is(err, context.DeadlineExceeded):
			fail(w, http.StatusGatewayTimeout, err.Error())
		default:
			fail(w, http.StatusInternalServerError, err.Error())
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{Error: msg})
}

// Peers lists connected peers.
func (d *Daemon) Peers() ([]api.Peer, error) {
	n, err := d.joined()
	if err != nil {
		return nil, err
	}
	h := n.Host()
	out := []api.Peer{}
	for _, p := range h.Network().Peers() {
		v := api.Peer{ID: p.String()}
		for _, c := range h.Network().ConnsToPeer(p) {
			a := c.RemoteMultiaddr()
			// go-libp2p names a WebRTC connection a browser opened by
			// its UDP address alone, which would read as no transport
			// the node speaks; the operator is told which it is.
			if _, err := a.ValueForProtocol(multiaddr.P_WEBRTC_DIRECT); err != nil && c.ConnState().Transport == "webrtc-direct" {
				a = a.Encapsulate(multiaddr.StringCast("/webrtc-direct"))
			}
			v.Addrs = append(v.Addrs, a.String())
		}
		out = append(out, v)
	}
	return out, nil
}

// bundle is an export file: sealed records, for a USB stick.
type bundle struct {
	Network directory.NetworkID `cbor:"1,keyasint"`
	Created int64               `cbor:"2,keyasint"`
	Records [][]byte            `cbor:"3,keyasint"`
}

// Export seals every record under the newest read key into one bundle.
// Whoever imports it needs that key: a bundle is as safe as the directory.
func (d *Daemon) Export() ([]byte, error) {
	n, err := d.joined()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	_, key, ok := d.ks.Keys.Current()
	d.mu.Unlock()
	if !ok {
		return nil, userErrorf("this node holds no read key yet")
	}
	st := n.State()
	b := bundle{Network: st.Network(), Created: time.Now().Unix()}
	for _, r := range st.Records() {
		b.Records = append(b.Records, directory.Seal(r, key))
	}
	return codeEnc.Marshal(&b)
}

// bundleDec reads export bundles: many records, each bounded.
var bundleDec, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxArrayElements: 1 << 20, MaxNestedLevels: 4,
	ExtraReturnErrors: cbor.ExtraDecErrorUnknownField}.DecMode()

// ImportResult counts what an import did.
type ImportResult struct {
	Added    int      `json:"added"`
	Known    int      `json:"known"`
	Rejected int      `json:"rejected"`
	Reasons  []string `json:"reasons,omitempty"`
}

// Import applies a bundle's records through the node, as if they had
// arrived from a peer: each is opened, verified and validated.
func (d *Daemon) Import(ctx context.Context, data []byte) (ImportResult, error) {
	n, err := d.joined()
	if err != nil {
		return ImportResult{}, err
	}
	var b bundle
	if err := bundleDec.Unmarshal(data, &b); err != nil {
		return ImportResult{}, userErrorf("not a Ceiba export bundle: %v", err)
	}
	if b.Network != n.State().Network() {
		return ImportResult{}, userErrorf("this bundle is from another network")
	}
	var res ImportResult
	for i, sealed := range b.Records {
		if ctx.Err() != nil {
			// The caller went away (the CLI gives up after 5 minutes):
			// what was imported stays, durable and gossiped; the rest
			// would be stored without being gossiped, under a request
			// nobody waits for. Importing the bundle again adds the rest.
			return res, fmt.Errorf("import stopped after %d of the bundle's %d records (%d new): %w", i, len(b.Records), res.Added, ctx.Err())
		}
		err := n.Import(ctx, sealed)
		switch {
		case err == nil:
			res.Added++
		case errors.Is(err, directory.ErrDuplicate) || errors.Is(err, directory.ErrStale):
			res.Known++
		default:
			res.Rejected++
			if len(res.Reasons) < 10 {
				res.Reasons = append(res.Reasons, err.Error())
			}
		}
	}
	return res, nil
}
