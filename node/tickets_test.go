package node

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/session"
)

// The member sites of the hand-off tests: this node is site-a; site-b and
// site-c only appear in its member list (and in their own envs).
const (
	siteAURL = "http://a.example/"
	siteBURL = "http://b.example/"
	siteCURL = "https://c.example/shop/"
	wantCSP  = "default-src 'none'; frame-ancestors http://a.example http://b.example https://c.example"
)

// testNonce is the browser nonce the hand-off tests' browser holds on
// every site (ValidNonce: 32 bytes in base64): tickets made for "this
// browser" are bound to it (testBinding).
var testNonce = base64.RawURLEncoding.EncodeToString([]byte("a browser nonce of 32 bytes, ok!"))

// testBinding is the binding of testNonce on site name.
func testBinding(name string) crypto.Binding { return crypto.BindingOf(name, testNonce) }

// hoEnv is one node's private API and public listener over a real store,
// with a static member list (no gossip).
type hoEnv struct {
	*apiEnv
	h   *handoff
	kr  *crypto.Keyring
	pub *httptest.Server
	// base is the public listener's URL plus the site path.
	base string
	// nonce is the nonce cookie every public request carries (testNonce;
	// "" for none): the browser tickets are bound to.
	nonce string
}

// hoSetup is what an hoOption may change before the env starts.
type hoSetup struct {
	cfg *handoffConfig
	pub *publicDeps
	tls bool // serve the public listener over TLS
}

type hoOption func(*hoSetup)

func testKeyring(t testing.TB) *crypto.Keyring {
	t.Helper()
	s, err := crypto.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return crypto.NewKeyring(s)
}

// staticMembers is a member list of this site and the others of the tests.
func staticMembers(name, siteURL string) func() []gossip.Member {
	ms := []gossip.Member{{Name: name, SiteURL: siteURL, State: "alive", Handoff: handoffVersion}}
	for _, o := range []gossip.Member{{Name: "site-a", SiteURL: siteAURL, Handoff: handoffVersion}, {Name: "site-b", SiteURL: siteBURL, Handoff: handoffVersion}, {Name: "site-c", SiteURL: siteCURL, Handoff: handoffVersion}} {
		if o.Name != name {
			ms = append(ms, o)
		}
	}
	return func() []gossip.Member { return ms }
}

// newHoEnv starts node name (site-a by default) at siteURL with keyring kr.
func newHoEnv(t testing.TB, kr *crypto.Keyring, name, siteURL string, opts ...hoOption) *hoEnv {
	t.Helper()
	e := &hoEnv{kr: kr, nonce: testNonce}
	var pd publicDeps
	setup := hoSetup{pub: &pd}
	e.apiEnv = newAPIEnv(t, func(w *testWiring) {
		w.svc.Name = name
		w.wire = func(svc *service, d *apiDeps) {
			cfg := handoffConfig{
				Keyring: kr, Service: svc, Name: name, SiteURL: siteURL,
				TicketTTL: time.Minute, HopInterval: 10 * time.Minute,
				Members: staticMembers(name, siteURL), Log: d.Log, Metrics: d.Metrics,
			}
			setup.cfg = &cfg
			for _, o := range opts {
				o(&setup)
			}
			h, err := newHandoff(cfg)
			if err != nil {
				t.Fatalf("new hand-off: %v", err)
			}
			e.h, d.Handoff = h, h
			pd.Service, pd.Handoff, pd.Log = svc, h, d.Log
		}
	})
	pub, err := newPublic(pd)
	if err != nil {
		t.Fatal(err)
	}
	e.pub = httptest.NewUnstartedServer(pub)
	if setup.tls {
		e.pub.StartTLS()
	} else {
		e.pub.Start()
	}
	t.Cleanup(e.pub.Close)
	e.base = e.pub.URL + e.h.self.URL.Path
	return e
}

func withBindIP(s *hoSetup) { s.cfg.BindIP = true }

func withTLS(s *hoSetup) { s.tls = true }

func withTrusted(cidr string) hoOption {
	return func(s *hoSetup) {
		s.pub.TrustedProxies = append(s.pub.TrustedProxies, netip.MustParsePrefix(cidr))
	}
}

type pubResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// cookie returns the Set-Cookie of name, or nil.
func (r *pubResponse) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// refusal checks an error answer of the public listener: status, code, no
// cookie, no session details.
func (r *pubResponse) refusal(t testing.TB, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	var ea struct {
		Error   struct{ Code, Message string }
		Session *json.RawMessage
	}
	if err := json.Unmarshal(r.Body, &ea); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	if ea.Error.Code != code || ea.Error.Message == "" {
		t.Fatalf("error %q (%q), want %q", ea.Error.Code, ea.Error.Message, code)
	}
	if ea.Session != nil {
		t.Errorf("the public answer shows the session: %s", r.Body)
	}
	if sc := r.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("a refusal set cookies: %q", sc)
	}
}

// get sends a request to the public listener (path relative to the site
// path) without following redirects; hdr is name, value pairs. It carries
// the env's nonce cookie (e.nonce), as the browser the tickets are bound
// to does.
func (e *hoEnv) pubDo(method, path string, hdr ...string) *pubResponse {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	if e.nonce != "" {
		req.AddCookie(&http.Cookie{Name: cookieNonce, Value: e.nonce})
	}
	cl := e.pub.Client()
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cl.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read: %v", err)
	}
	what := method + " " + path
	if len(what) > 80 {
		what = what[:80] + "…"
	}
	checkSecurityHeaders(e.t, what, resp.Header)
	return &pubResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

func (e *hoEnv) get(path string, hdr ...string) *pubResponse { return e.pubDo("GET", path, hdr...) }

func checkSecurityHeaders(t testing.TB, what string, h http.Header) {
	t.Helper()
	for k, v := range map[string]string{
		"Content-Security-Policy": wantCSP,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	} {
		// A refused step's page for people allows its own style too.
		page := strings.HasPrefix(h.Get("Content-Type"), "text/html") && strings.HasPrefix(h.Get(k), "default-src 'none'; style-src 'sha256-")
		if got := h.Get(k); got != v && !(k == "Content-Security-Policy" && (page || strings.HasPrefix(got, "default-src 'none'; frame-ancestors "))) {
			t.Errorf("%s: %s %q, want %q", what, k, got, v)
		}
	}
}

// session reads a session and its user from the env's store.
func (e *hoEnv) session(t testing.TB, id string) (session.Session, session.User) {
	t.Helper()
	s, err := e.store.Session(id)
	if err != nil {
		t.Fatalf("read session: %v", err)
	}
	u, err := e.store.User(s.Email)
	if err != nil {
		t.Fatalf("read user: %v", err)
	}
	return s, u
}

// ticketFor logs email in on e and seals a ticket of the session for
// target, bound to the test browser (testNonce).
func (e *hoEnv) ticketFor(t testing.TB, target, email, ip string) (string, loginJSON) {
	t.Helper()
	l := e.login(t, email, true)
	s, u := e.session(t, l.Session.ID)
	tk, err := e.h.sealSession(target, &s, &u, testBinding(target), ip)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return tk, l
}

// sessionOf is the id of the session a cookie token stands for on e (the
// session check, GET /v1/sessions/{sha256(token)}), "" when none is active.
func (e *hoEnv) sessionOf(t testing.TB, token string) string {
	t.Helper()
	code, _, s := e.checkSession(t, crypto.SessionID(token))
	if code != http.StatusOK {
		return ""
	}
	return s.ID
}

func syncPath(q url.Values) string { return "ussync/v1/sync?" + q.Encode() }

// reseal decodes a ticket, lets f change its raw bytes, and encodes it.
func reseal(t testing.TB, tk string, f func([]byte)) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(tk)
	if err != nil {
		t.Fatal(err)
	}
	f(raw)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func TestHandoff_LoginLinks(t *testing.T) {
	kr := testKeyring(t)
	t.Run("one link per other site and a chain back", func(t *testing.T) {
		e := newHoEnv(t, kr, "site-a", siteAURL)
		e.do("PUT", "/v1/users/ann@example.com", `{"verified_via":"registration"}`).want(t, http.StatusOK, nil)
		var l loginJSON
		e.do("POST", "/v1/sessions", `{"email":"ann@example.com","return_to":"http://a.example/account?tab=1"}`).want(t, http.StatusCreated, &l)
		if l.Sync == nil || len(l.Sync.URLs) != 2 || l.Sync.Chain == nil {
			t.Fatalf("sync %+v", l.Sync)
		}
		// Each link starts the first pass of a bound hand-off: a bind state
		// sealed by this site for the route, with no session credential in
		// it (no token, no session record).
		now := e.clock.Now()
		openState := func(t *testing.T, raw string) (crypto.Ticket, ticketPayload) {
			t.Helper()
			tk, err := kr.OpenTicket(raw, now)
			if err != nil {
				t.Fatal(err)
			}
			var p ticketPayload
			if err := decodeBindState(tk.Payload, &p); err != nil {
				t.Fatalf("bind state %v: %v", tk, err)
			}
			if tk.Target != "site-a" || tk.SessionID != l.Session.ID || tk.Token != "" || len(tk.Bindings) != 0 || p.Session != nil || p.User != nil {
				t.Errorf("bind state %v %+v", tk, p)
			}
			return tk, p
		}
		// An iframe's link starts on this site (same-site with the page
		// that frames it), and so does the chain.
		for i, want := range []struct{ site, prefix string }{{"site-b", siteAURL}, {"site-c", siteAURL}} {
			got := l.Sync.URLs[i]
			if got["site"] != want.site || !strings.HasPrefix(got["url"], want.prefix+"ussync/v1/bind?h=") {
				t.Errorf("url %d: %v", i, got)
			}
			if len(got["url"]) > 900 {
				t.Errorf("a sync URL is %d characters long", len(got["url"]))
			}
			u, _ := url.Parse(got["url"])
			if _, p := openState(t, u.Query().Get("h")); !slices.Equal(p.Route, []string{want.site}) || p.Return != "" {
				t.Errorf("url %d: route %v return %q", i, p.Route, p.Return)
			}
		}
		chain, err := url.Parse(*l.Sync.Chain)
		if err != nil || chain.Host != "a.example" || chain.Path != "/ussync/v1/bind" {
			t.Fatalf("chain %q", *l.Sync.Chain)
		}
		q := chain.Query()
		if len(q) != 1 || q.Get("h") == "" {
			t.Errorf("chain query %v", q)
		}
		t.Logf("chain URL through 2 sites: %d characters", len(*l.Sync.Chain))
		if _, p := openState(t, q.Get("h")); !slices.Equal(p.Route, []string{"site-b", "site-c"}) || p.Return != "http://a.example/account?tab=1" ||
			!slices.Equal(p.Bound, []string{"", ""}) {
			t.Errorf("chain: route %v bound %q return %q", p.Route, p.Bound, p.Return)
		}
	})
	t.Run("default return is the site", func(t *testing.T) {
		e := newHoEnv(t, kr, "site-a", siteAURL)
		l := e.login(t, "ann@example.com", true)
		chain, _ := url.Parse(*l.Sync.Chain)
		tk, err := kr.OpenTicket(chain.Query().Get("h"), e.clock.Now())
		var p ticketPayload
		if err != nil || decodeBindState(tk.Payload, &p) != nil || p.Return != siteAURL {
			t.Errorf("return %q (%v)", p.Return, err)
		}
	})
	t.Run("unverified user: no links", func(t *testing.T) {
		e := newHoEnv(t, kr, "site-a", siteAURL)
		l := e.login(t, "eve@example.com", false)
		if len(l.Sync.URLs) != 0 || *l.Sync.Chain != "" {
			t.Errorf("sync %+v", l.Sync)
		}
	})
	t.Run("return_to elsewhere is refused", func(t *testing.T) {
		e := newHoEnv(t, kr, "site-a", siteAURL)
		for _, rt := range []string{"https://evil.example/", "http://b.example/", "https://a.example/", "/relative", "http://a.example/../x"} {
			e.do("POST", "/v1/sessions", map[string]string{"email": "ann@example.com", "return_to": rt}).
				wantError(t, http.StatusBadRequest, client.CodeBadRedirect)
		}
		if _, n := e.store.Counts(); n != 0 {
			t.Errorf("%d sessions created by refused logins", n)
		}
	})
	t.Run("bind_ip needs the client address", func(t *testing.T) {
		e := newHoEnv(t, kr, "site-a", siteAURL, withBindIP)
		e.do("POST", "/v1/sessions", `{"email":"ann@example.com"}`).wantError(t, http.StatusBadRequest, client.CodeInvalidField)
		var l loginJSON
		e.do("PUT", "/v1/users/ann@example.com", `{"verified_via":"admin"}`).want(t, http.StatusOK, nil)
		e.do("POST", "/v1/sessions", `{"email":"ann@example.com","ip":"::ffff:192.0.2.7"}`).want(t, http.StatusCreated, &l)
		u, _ := url.Parse(l.Sync.URLs[0]["url"])
		tk, err := kr.OpenTicket(u.Query().Get("h"), e.clock.Now())
		if err != nil || tk.ClientIP != "192.0.2.7" {
			t.Errorf("bind state %v, %v: want bound to 192.0.2.7", tk, err)
		}
	})
}

// TestHandoff_EveryKindHasALifetime: a member holding the cluster secret
// seals a bind state, a hop request or a session ticket to live most of a
// day (what SealTicket allows): every step that opens one refuses it as
// ticket_lifetime, before it reads what it says, and sets nothing (issue
// 9, item 7: the hand-off's tickets live no longer than sync.ticket_ttl
// plus the max offset).
func TestHandoff_EveryKindHasALifetime(t *testing.T) {
	e := newHoEnv(t, testKeyring(t), "site-a", siteAURL)
	l := e.login(t, "ann@example.com", true)
	s, u := e.session(t, l.Session.ID)
	stretch := func(raw string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		tk, err := e.kr.OpenTicket(raw, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		tk.ExpiresAt = tk.IssuedAt.Add(23 * time.Hour)
		out, err := e.kr.SealTicket(tk)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	bind := stretch(e.h.sealBindState([]string{"site-b"}, "", s.ID, "", ""))
	hop := stretch(e.h.sealHop(siteAURL, []string{"site-b"}, testBinding("site-a"), ""))
	sess := stretch(e.h.sealSession("site-a", &s, &u, testBinding("site-a"), ""))
	for _, tc := range []struct{ step, param, raw string }{
		{"bind", "h", bind}, {"chain", "h", bind}, {"hop/ask", "h", hop}, {"hop/done", "h", hop}, {"sync", "t", sess},
	} {
		t.Run(tc.step, func(t *testing.T) {
			r := e.get("ussync/v1/"+tc.step+"?"+url.Values{tc.param: {tc.raw}}.Encode(), cookieHeaderOf(cookieSession, l.Token)...)
			code := r.Header.Get(refusedHeader)
			if code == "" {
				var ea struct{ Error struct{ Code string } }
				json.Unmarshal(r.Body, &ea)
				code = ea.Error.Code
			}
			if code != client.CodeTicketLifetime {
				t.Fatalf("%s with a ticket of a day: %d %q (refused %q), want %s", tc.step, r.Status, r.Body, code, client.CodeTicketLifetime)
			}
			if sc := r.Header.Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("the refusal set cookies: %q", sc)
			}
		})
	}
}

// cookieHeaderOf is a Cookie header of one cookie, as pubDo's hdr pairs.
func cookieHeaderOf(name, value string) []string {
	return []string{"Cookie", name + "=" + value}
}

func TestPublic_SyncRefusals(t *testing.T) {
	kr := testKeyring(t)
	other := testKeyring(t)
	e := newHoEnv(t, kr, "site-a", siteAURL)
	valid := func(t *testing.T) string {
		tk, _ := e.ticketFor(t, "site-a", "ann@example.com", "")
		return tk
	}
	sealWith := func(t *testing.T, k *crypto.Keyring, mod func(*crypto.Ticket)) string {
		l := e.login(t, "ann@example.com", true)
		s, u := e.session(t, l.Session.ID)
		s.ID = ""
		payload, err := encodePayload(&ticketPayload{Session: &s, User: &u})
		if err != nil {
			t.Fatal(err)
		}
		now := e.clock.Now()
		tk := crypto.Ticket{Target: "site-a", SessionID: l.Session.ID, Bindings: []crypto.Binding{testBinding("site-a")},
			IssuedAt: now, ExpiresAt: now.Add(time.Minute), Payload: payload}
		mod(&tk)
		sealed, err := k.SealTicket(tk)
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	for _, tc := range []struct {
		name   string
		ticket func(t *testing.T) string
		status int
		code   string
	}{
		{"missing", func(*testing.T) string { return "" }, 400, client.CodeTicketMalformed},
		{"garbage", func(*testing.T) string { return "!!not-a-ticket!!" }, 400, client.CodeTicketMalformed},
		{"truncated", func(t *testing.T) string { return valid(t)[:40] }, 400, client.CodeTicketMalformed},
		{"too long", func(*testing.T) string { return strings.Repeat("A", crypto.MaxTicketBytes+1) }, 400, client.CodeTicketMalformed},
		{"wrong version", func(t *testing.T) string { return reseal(t, valid(t), func(b []byte) { b[0] = 9 }) }, 400, client.CodeTicketMalformed},
		{"unknown key", func(t *testing.T) string { return sealWith(t, other, func(*crypto.Ticket) {}) }, 400, client.CodeTicketUnknownKey},
		{"tampered", func(t *testing.T) string { return reseal(t, valid(t), func(b []byte) { b[len(b)-20] ^= 1 }) }, 400, client.CodeTicketTampered},
		{"tampered key id", func(t *testing.T) string {
			// Another key's id with this key's ciphertext: the header is
			// authenticated.
			o := sealWith(t, other, func(*crypto.Ticket) {})
			ob, _ := base64.RawURLEncoding.DecodeString(o)
			return reseal(t, valid(t), func(b []byte) { copy(b[1:9], ob[1:9]) })
		}, 400, client.CodeTicketUnknownKey},
		{"issued in the future", func(t *testing.T) string {
			return sealWith(t, kr, func(tk *crypto.Ticket) {
				tk.IssuedAt = tk.IssuedAt.Add(10 * time.Second)
				tk.ExpiresAt = tk.IssuedAt.Add(time.Minute)
			})
		}, 410, client.CodeTicketExpired},
		{"expired", func(t *testing.T) string {
			return sealWith(t, kr, func(tk *crypto.Ticket) {
				tk.IssuedAt = tk.IssuedAt.Add(-2 * time.Minute)
				tk.ExpiresAt = tk.IssuedAt.Add(time.Minute)
			})
		}, 410, client.CodeTicketExpired},
		{"wrong target", func(t *testing.T) string { tk, _ := e.ticketFor(t, "site-b", "ann@example.com", ""); return tk }, 403, client.CodeTicketWrongTarget},
		{"ip mismatch", func(t *testing.T) string {
			tk, _ := e.ticketFor(t, "site-a", "ann@example.com", "192.0.2.99")
			return tk
		}, 403, client.CodeTicketIPMismatch},
		{"session id that is no id", func(t *testing.T) string {
			return sealWith(t, kr, func(tk *crypto.Ticket) { tk.SessionID = strings.Repeat("x", 64) })
		}, 400, client.CodeTicketMalformed},
		{"bound to no browser", func(t *testing.T) string {
			return sealWith(t, kr, func(tk *crypto.Ticket) { tk.Bindings = nil })
		}, 403, client.CodeOtherBrowser},
		{"bound to another browser", func(t *testing.T) string {
			return sealWith(t, kr, func(tk *crypto.Ticket) { tk.Bindings[0] = crypto.BindingOf("site-a", "another nonce") })
		}, 403, client.CodeOtherBrowser},
		{"bound to this browser's nonce on another site", func(t *testing.T) string {
			return sealWith(t, kr, func(tk *crypto.Ticket) { tk.Bindings[0] = testBinding("site-b") })
		}, 403, client.CodeOtherBrowser},
		{"lives longer than the ticket TTL", func(t *testing.T) string {
			return sealWith(t, kr, func(tk *crypto.Ticket) { tk.ExpiresAt = tk.IssuedAt.Add(time.Hour) })
		}, 400, client.CodeTicketLifetime},
		{"a session living past the cluster's maximum", func(t *testing.T) string {
			l := e.login(t, "ann@example.com", true)
			s, u := e.session(t, l.Session.ID)
			s.ExpiresAt = e.clock.Now().Add(2 * session.DefaultMaxSessionTTL).UnixMilli()
			tk, err := e.h.sealSession("site-a", &s, &u, testBinding("site-a"), "")
			if err != nil {
				t.Fatal(err)
			}
			return tk
		}, 400, client.CodeTicketLifetime},
		{"hop request", func(t *testing.T) string {
			h, err := e.h.sealHop(siteAURL, []string{"site-b"}, testBinding("site-a"), "")
			if err != nil {
				t.Fatal(err)
			}
			return h
		}, 400, client.CodeTicketMalformed},
		{"replayed", func(t *testing.T) string {
			tk := valid(t)
			if r := e.get(syncPath(url.Values{"t": {tk}})); r.Status != http.StatusNoContent {
				t.Fatalf("first use: %d %s", r.Status, r.Body)
			}
			return tk
		}, 409, client.CodeTicketReplayed},
		{"session ended", func(t *testing.T) string {
			tk, l := e.ticketFor(t, "site-a", "ann@example.com", "")
			e.do("DELETE", "/v1/sessions/"+l.Session.ID, nil).want(t, http.StatusOK, nil)
			return tk
		}, 410, client.CodeSessionEnded},
		{"session revoked", func(t *testing.T) string {
			tk, _ := e.ticketFor(t, "site-a", "bob@example.com", "")
			e.do("POST", "/v1/users/bob@example.com/logout-everywhere", nil).want(t, http.StatusOK, nil)
			return tk
		}, 410, client.CodeSessionEnded},
		{"session revoked by a later log out everywhere", func(t *testing.T) string {
			// The ticket carries the old user record; the store's newer
			// revocation wins the merge.
			l := e.login(t, "cat@example.com", true)
			s, u := e.session(t, l.Session.ID)
			e.clock.Add(time.Millisecond)
			u2, _ := e.store.User("cat@example.com")
			u2.RevokedBefore = e.store.Clock().Now()
			if _, err := e.store.Apply(session.Record{User: &u2}); err != nil {
				t.Fatal(err)
			}
			tk, err := e.h.sealSession("site-a", &s, &u, testBinding("site-a"), "")
			if err != nil {
				t.Fatal(err)
			}
			return tk
		}, 410, client.CodeSessionRevoked},
		{"session expired", func(t *testing.T) string {
			var l loginJSON
			e.do("PUT", "/v1/users/dan@example.com", `{"verified_via":"admin"}`).want(t, http.StatusOK, nil)
			e.do("POST", "/v1/sessions", `{"email":"dan@example.com","ttl":"30s"}`).want(t, http.StatusCreated, &l)
			e.clock.Add(31 * time.Second)
			s, u := e.session(t, l.Session.ID)
			tk, err := e.h.sealSession("site-a", &s, &u, testBinding("site-a"), "")
			if err != nil {
				t.Fatal(err)
			}
			return tk
		}, 410, client.CodeSessionExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := tc.ticket(t)
			e.get(syncPath(url.Values{"t": {tk}})).refusal(t, tc.status, tc.code)
		})
	}
	t.Run("expired by the clock", func(t *testing.T) {
		tk := valid(t)
		e.clock.Add(61 * time.Second)
		e.get(syncPath(url.Values{"t": {tk}})).refusal(t, http.StatusGone, client.CodeTicketExpired)
	})
	// A ticket is sealed under the cluster secret, so a member can put in
	// it records no peer could make this node take (issue 9, "one bad
	// record"): they are refused as a peer's would be, before anything is
	// used up, and neither the store nor its clock follows them.
	t.Run("records stamped in the future", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			mod  func(s *session.Session, u *session.User)
		}{
			{"a user revoked at the end of time", func(_ *session.Session, u *session.User) {
				u.RevokedBefore = session.MaxHLC
				u.Login = session.Set("mallory", session.MaxHLC, "site-b")
			}},
			{"a session created a minute ahead", func(s *session.Session, _ *session.User) {
				s.Created = session.MakeHLC(e.clock.Now().Add(time.Minute).UnixMilli(), 0)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				l := e.login(t, "eve@example.com", true)
				s, u := e.session(t, l.Session.ID)
				created := s.Created
				tc.mod(&s, &u)
				tk, err := e.h.sealSession("site-a", &s, &u, testBinding("site-a"), "")
				if err != nil {
					t.Fatal(err)
				}
				for range 2 { // the same refusal twice: the first used nothing up
					e.get(syncPath(url.Values{"t": {tk}})).refusal(t, http.StatusGone, client.CodeTicketExpired)
				}
				got, err := e.store.User("eve@example.com")
				if err != nil || got.RevokedBefore == session.MaxHLC || got.Login.V == "mallory" {
					t.Errorf("the store took the ticket's user: %+v %v", got, err)
				}
				if last, bound := e.store.Clock().Last(), session.MakeHLC(e.clock.Now().Add(5*time.Second).UnixMilli(), 0); last > bound {
					t.Errorf("the clock followed the ticket to %s", last)
				}
				if got, _ := e.store.Session(l.Session.ID); got.Created != created {
					t.Errorf("the store took the ticket's session: created %s", got.Created)
				}
			})
		}
	})
	t.Run("bad redirect refuses before redeeming", func(t *testing.T) {
		tk := valid(t)
		for _, next := range []string{
			"https://evil.example/", "//evil.example/", "http://a.example@evil.example/", "http://a.example.evil.example/",
			"javascript:alert(1)", "/relative", "http://c.example/shop/", "https://c.example/shopping", "https://c.example/",
			"https://c.example/shop/%2e%2e/admin", "https://c.example/shop/../admin", "http://a.example\\@evil.example/",
			"http://a.example/%2F%2Fevil.example", "ftp://a.example/", "http://b.example:8080/", " http://a.example/",
		} {
			e.get(syncPath(url.Values{"t": {tk}, "next": {next}})).refusal(t, http.StatusBadRequest, client.CodeBadRedirect)
		}
		// Nothing was redeemed: the ticket still works.
		if r := e.get(syncPath(url.Values{"t": {tk}})); r.Status != http.StatusNoContent {
			t.Fatalf("the ticket after refused redirects: %d %s", r.Status, r.Body)
		}
	})
	t.Run("member redirects", func(t *testing.T) {
		for _, next := range []string{"http://a.example/x?y=1#z", "http://A.EXAMPLE:80/", "https://c.example/shop/cart", "https://c.example:443/shop", "http://b.example/"} {
			r := e.get(syncPath(url.Values{"t": {valid(t)}, "next": {next}}))
			if r.Status != http.StatusSeeOther || r.cookie(cookieSession) == nil {
				t.Fatalf("next=%s: %d %s", next, r.Status, r.Body)
			}
			want, _ := url.Parse(next)
			if loc := r.Header.Get("Location"); loc != want.String() {
				t.Errorf("Location %q, want %q", loc, want)
			}
		}
	})
	if strings.Contains(e.logs.String(), "ussync_session=") {
		t.Error("a cookie was logged")
	}
}

func TestPublic_SyncCookie(t *testing.T) {
	kr := testKeyring(t)
	for _, tc := range []struct {
		name, siteURL, mode string
		opts                []hoOption
		hdr                 []string
		secure              bool
		sameSite            http.SameSite
	}{
		{name: "chain on http", siteURL: siteAURL, secure: false, sameSite: http.SameSiteLaxMode},
		{name: "iframe on http", siteURL: siteAURL, mode: "iframe", secure: false, sameSite: http.SameSiteNoneMode},
		{name: "iframe on localhost", siteURL: "http://a.localhost:8080/app/", mode: "iframe", secure: true, sameSite: http.SameSiteNoneMode},
		{name: "chain on localhost", siteURL: "http://a.localhost:8080/app/", secure: false, sameSite: http.SameSiteLaxMode},
		{name: "https site", siteURL: "https://a.example/blog/", secure: true, sameSite: http.SameSiteLaxMode},
		{name: "over TLS", siteURL: siteAURL, opts: []hoOption{withTLS}, secure: true, sameSite: http.SameSiteLaxMode},
		{name: "trusted proxy says https", siteURL: siteAURL, opts: []hoOption{withTrusted("127.0.0.0/8")}, hdr: []string{"X-Forwarded-Proto", "https"}, secure: true, sameSite: http.SameSiteLaxMode},
		{name: "untrusted proxy says https", siteURL: siteAURL, opts: []hoOption{withTrusted("10.0.0.0/8")}, hdr: []string{"X-Forwarded-Proto", "https"}, secure: false, sameSite: http.SameSiteLaxMode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHoEnv(t, kr, "site-a", tc.siteURL, tc.opts...)
			tk, l := e.ticketFor(t, "site-a", "ann@example.com", "")
			q := url.Values{"t": {tk}}
			if tc.mode != "" {
				q.Set("m", tc.mode)
			}
			r := e.get(syncPath(q), tc.hdr...)
			if r.Status != http.StatusNoContent || len(r.Body) != 0 {
				t.Fatalf("status %d %s", r.Status, r.Body)
			}
			c := r.cookie(cookieSession)
			if c == nil {
				t.Fatalf("no cookie: %q", r.Header.Values("Set-Cookie"))
			}
			wantPath := e.h.self.URL.Path
			wantAge := int(l.Session.ExpiresAt.Sub(e.clock.Now()) / time.Second)
			// The site's own token, never the login's: it stands for the
			// session here only.
			if c.Value == l.Token || e.sessionOf(t, c.Value) != l.Session.ID {
				t.Errorf("the cookie's token stands for %q, want session %s", e.sessionOf(t, c.Value), l.Session.ID)
			}
			if !c.HttpOnly || c.Path != wantPath || c.Secure != tc.secure || c.SameSite != tc.sameSite ||
				c.MaxAge != wantAge || c.Domain != "" {
				t.Errorf("cookie %q: want path %s secure %v samesite %v max-age %d", r.Header.Get("Set-Cookie"), wantPath, tc.secure, tc.sameSite, wantAge)
			}
		})
	}
	t.Run("before gossip: the ticket carries the session", func(t *testing.T) {
		a := newHoEnv(t, kr, "site-a", siteAURL)
		b := newHoEnv(t, kr, "site-b", siteBURL)
		l := a.login(t, "ann@example.com", true)
		as, au := a.session(t, l.Session.ID)
		tk, err := a.h.sealSession("site-b", &as, &au, testBinding("site-b"), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Session(l.Session.ID); err == nil {
			t.Fatal("site-b knows the session already")
		}
		r := b.get(syncPath(url.Values{"t": {tk}}))
		if r.Status != http.StatusNoContent || r.cookie(cookieSession) == nil {
			t.Fatalf("redeem on site-b: %d %s", r.Status, r.Body)
		}
		s, user := b.session(t, l.Session.ID)
		if s.Site != "site-a" || s.Email != "ann@example.com" || !user.Verified.V.OK || s.UserAgent != "test/1.0" {
			t.Errorf("site-b holds %+v, %+v", s, user)
		}
		if as, _ := a.store.Session(l.Session.ID); as != s {
			t.Errorf("the records differ:\n%+v\n%+v", as, s)
		}
		if strings.Contains(b.logs.String(), r.cookie(cookieSession).Value) || strings.Contains(b.logs.String(), tk) {
			t.Error("a token or ticket was logged")
		}
		// Site-b had never proved ann's mailbox: this hand-off is its first
		// proof, and its backend is told so (a local account it had under
		// the address was never proven). The next hand-off finds it bound.
		if got := r.Header.Get(wasBoundHeader); got != "false" {
			t.Errorf("first hand-off to site-b: %s %q, want false", wasBoundHeader, got)
		}
		l2 := a.login(t, "ann@example.com", true)
		as2, au2 := a.session(t, l2.Session.ID)
		tk2, err := a.h.sealSession("site-b", &as2, &au2, testBinding("site-b"), "")
		if err != nil {
			t.Fatal(err)
		}
		r2 := b.get(syncPath(url.Values{"t": {tk2}}))
		if r2.Status != http.StatusNoContent || r2.Header.Get(wasBoundHeader) != "true" {
			t.Errorf("second hand-off to site-b: %d %s %q, want true", r2.Status, wasBoundHeader, r2.Header.Get(wasBoundHeader))
		}
		// A refused ticket says nothing of the binding.
		if r3 := b.get(syncPath(url.Values{"t": {tk2}})); r3.Header.Get(wasBoundHeader) != "" {
			t.Errorf("a replayed ticket: %d %v", r3.Status, r3.Header)
		}
	})
}

func TestPublic_Chain(t *testing.T) {
	kr := testKeyring(t)
	e := newHoEnv(t, kr, "site-a", siteAURL)
	chain := func(route ...string) string {
		l := e.login(t, "ann@example.com", true)
		s, u := e.session(t, l.Session.ID)
		payload, err := sessionPayload(&s, &u)
		if err != nil {
			t.Fatal(err)
		}
		binds := make([]crypto.Binding, len(route))
		for i, name := range route {
			binds[i] = testBinding(name)
		}
		tk, err := e.h.seal(ticketKindSession, crypto.Ticket{Route: route, Bindings: binds, SessionID: s.ID, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	next := "http://a.example/back"
	sync := func(tk string) *pubResponse { return e.get(syncPath(url.Values{"t": {tk}, "next": {next}})) }
	t.Run("forwards the ticket to the next site of its route", func(t *testing.T) {
		tk := chain("site-a", "site-b", "site-c")
		r := sync(tk)
		if r.Status != http.StatusSeeOther || r.cookie(cookieSession) == nil || r.cookie(cookieSession).SameSite != http.SameSiteLaxMode {
			t.Fatalf("%d %q", r.Status, r.Header.Values("Set-Cookie"))
		}
		want := siteBURL + "ussync/v1/sync?" + url.Values{"t": {tk}, "next": {next}}.Encode()
		if loc := r.Header.Get("Location"); loc != want {
			t.Errorf("Location %s, want %s", loc, want)
		}
	})
	t.Run("the middle of a route goes on to what follows it", func(t *testing.T) {
		tk := chain("site-b", "site-a", "site-c")
		r := sync(tk)
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.Status != http.StatusSeeOther || r.cookie(cookieSession) == nil || loc.Host != "c.example" || loc.Query().Get("t") != tk {
			t.Errorf("%d Location %s", r.Status, loc)
		}
	})
	t.Run("the end of the route goes to next", func(t *testing.T) {
		r := sync(chain("site-c", "site-a"))
		if r.Status != http.StatusSeeOther || r.cookie(cookieSession) == nil || r.Header.Get("Location") != next {
			t.Errorf("%d Location %s", r.Status, r.Header.Get("Location"))
		}
	})
	t.Run("sites that are not live members are skipped", func(t *testing.T) {
		tk := chain("site-a", "site-z", "site-c")
		r := sync(tk)
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.Status != http.StatusSeeOther || loc.Host != "c.example" || loc.Query().Get("t") != tk {
			t.Errorf("%d Location %s", r.Status, loc)
		}
	})
	t.Run("a refused hop still forwards, setting nothing", func(t *testing.T) {
		tk := chain("site-a", "site-b")
		e.get(syncPath(url.Values{"t": {tk}})) // used once
		r := sync(tk)
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.Status != http.StatusSeeOther || loc.Host != "b.example" || loc.Query().Get("t") != tk || r.Header.Get(refusedHeader) != client.CodeTicketReplayed {
			t.Errorf("%d Location %s refused %q", r.Status, loc, r.Header.Get(refusedHeader))
		}
		if sc := r.Header.Values("Set-Cookie"); len(sc) != 0 {
			t.Errorf("cookies %q", sc)
		}
	})
	t.Run("a ticket not for this site goes to next, setting nothing", func(t *testing.T) {
		single, _ := e.ticketFor(t, "site-b", "ann@example.com", "")
		for name, tk := range map[string]string{"single": single, "chain": chain("site-b", "site-c")} {
			r := sync(tk)
			if r.Status != http.StatusSeeOther || r.Header.Get("Location") != next || r.Header.Get(refusedHeader) != client.CodeTicketWrongTarget || len(r.Header.Values("Set-Cookie")) != 0 {
				t.Errorf("%s: %d %v", name, r.Status, r.Header)
			}
		}
	})
	t.Run("an expired chain ticket goes to next", func(t *testing.T) {
		tk := chain("site-a", "site-b")
		e.clock.Add(2 * time.Minute)
		r := sync(tk)
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != next || r.Header.Get(refusedHeader) != client.CodeTicketExpired {
			t.Errorf("%d %v", r.Status, r.Header)
		}
	})
}

func TestAPI_RedeemTicket(t *testing.T) {
	kr := testKeyring(t)
	a := newHoEnv(t, kr, "site-a", siteAURL, withBindIP)
	b := newHoEnv(t, kr, "site-b", siteBURL)
	a.do("PUT", "/v1/users/ann@example.com", `{"verified_via":"registration","login":"ann","display_name":"Ann"}`).want(t, http.StatusOK, nil)
	// login seals the tickets a hand-off gives a browser (nonce testNonce
	// on every site) for site-b and site-c, bound to 192.0.2.7.
	login := func() (forB, forC string, l loginJSON) {
		a.do("POST", "/v1/sessions", `{"email":"ann@example.com","ip":"192.0.2.7"}`).want(t, http.StatusCreated, &l)
		s, u := a.session(t, l.Session.ID)
		var err error
		if forB, err = a.h.sealSession("site-b", &s, &u, testBinding("site-b"), "192.0.2.7"); err != nil {
			t.Fatal(err)
		}
		if forC, err = a.h.sealSession("site-c", &s, &u, testBinding("site-c"), "192.0.2.7"); err != nil {
			t.Fatal(err)
		}
		return forB, forC, l
	}
	redeem := func(tk, ip string) map[string]string {
		return map[string]string{"ticket": tk, "ip": ip, "nonce": testNonce}
	}
	t.Run("happy path", func(t *testing.T) {
		tk, _, l := login()
		var ans struct {
			Session  sessionJSON `json:"session"`
			User     userJSON    `json:"user"`
			Token    string      `json:"token"`
			WasBound *bool       `json:"site_was_bound"`
		}
		b.do("POST", "/v1/tickets/redeem", redeem(tk, "192.0.2.7")).want(t, http.StatusOK, &ans)
		if ans.Session.ID != l.Session.ID || !ans.Session.Active || ans.Session.Site != "site-a" || ans.User.Email != "ann@example.com" ||
			ans.User.Login != "ann" || ans.User.DisplayName != "Ann" || !ans.User.Verified || ans.WasBound == nil || *ans.WasBound {
			t.Errorf("answer %+v", ans)
		}
		// Site-b's own token: it stands for the session on site-b, and on
		// no other site (site-a has never seen it).
		if ans.Token == l.Token || b.sessionOf(t, ans.Token) != l.Session.ID || a.sessionOf(t, ans.Token) != "" {
			t.Errorf("token %q: site-b resolves it to %q, site-a to %q", ans.Token, b.sessionOf(t, ans.Token), a.sessionOf(t, ans.Token))
		}
		b.do("POST", "/v1/tickets/redeem", redeem(tk, "192.0.2.7")).wantError(t, http.StatusConflict, client.CodeTicketReplayed)
	})
	t.Run("refusals", func(t *testing.T) {
		tk, forC, _ := login()
		b.do("POST", "/v1/tickets/redeem", map[string]string{"ticket": tk, "nonce": testNonce}).wantError(t, http.StatusForbidden, client.CodeTicketIPMismatch)
		b.do("POST", "/v1/tickets/redeem", redeem(tk, "198.51.100.1")).wantError(t, http.StatusForbidden, client.CodeTicketIPMismatch)
		b.do("POST", "/v1/tickets/redeem", redeem(forC, "192.0.2.7")).wantError(t, http.StatusForbidden, client.CodeTicketWrongTarget)
		b.do("POST", "/v1/tickets/redeem", redeem(tk[:50], "192.0.2.7")).wantError(t, http.StatusBadRequest, client.CodeTicketMalformed)
		b.do("POST", "/v1/tickets/redeem", redeem(tk, "not-an-ip")).wantError(t, http.StatusBadRequest, client.CodeInvalidField)
		b.do("POST", "/v1/tickets/redeem", map[string]string{"ticket": tk, "ip": "192.0.2.7"}).wantError(t, http.StatusForbidden, client.CodeOtherBrowser)
		other, _ := crypto.NewNonce()
		b.do("POST", "/v1/tickets/redeem", map[string]string{"ticket": tk, "ip": "192.0.2.7", "nonce": other}).wantError(t, http.StatusForbidden, client.CodeOtherBrowser)
		b.do("POST", "/v1/tickets/redeem", `{"ip":"192.0.2.7"}`).wantError(t, http.StatusBadRequest, client.CodeInvalidField)
		b.do("POST", "/v1/tickets/redeem", `{"ticket":"x","next":"y"}`).wantError(t, http.StatusBadRequest, client.CodeUnknownField)
		b.do("POST", "/v1/tickets/redeem", map[string]string{"ticket": tk}, "Authorization", "").wantError(t, http.StatusUnauthorized, client.CodeUnauthorized)
		// The refusals above did not use the ticket up; site-b is bound
		// since the happy path's hand-off.
		var ans struct {
			WasBound *bool `json:"site_was_bound"`
		}
		b.do("POST", "/v1/tickets/redeem", redeem(tk, "::ffff:192.0.2.7")).want(t, http.StatusOK, &ans)
		if ans.WasBound == nil || !*ans.WasBound {
			t.Errorf("site_was_bound %v after an earlier hand-off", ans.WasBound)
		}
	})
	t.Run("another user's session in the browser", func(t *testing.T) {
		tk, _, _ := login()
		bob := b.login(t, "bob@example.com", true)
		req := redeem(tk, "192.0.2.7")
		req["session"] = bob.Token
		b.do("POST", "/v1/tickets/redeem", req).wantError(t, http.StatusConflict, client.CodeSessionConflict)
		delete(req, "session")
		b.do("POST", "/v1/tickets/redeem", req).want(t, http.StatusOK, nil)
	})
	t.Run("ended session", func(t *testing.T) {
		tk, _, l := login()
		a.do("DELETE", "/v1/sessions/"+l.Session.ID, nil).want(t, http.StatusOK, nil)
		// Gossip brings the logout to site-b; the ticket's older record,
		// alive, does not undo it.
		ended, _ := a.session(t, l.Session.ID)
		if _, err := b.store.Apply(session.Record{Session: &ended}); err != nil {
			t.Fatal(err)
		}
		ea := b.do("POST", "/v1/tickets/redeem", redeem(tk, "192.0.2.7")).wantError(t, http.StatusGone, client.CodeSessionEnded)
		if ea.Session == nil || ea.Session.ID != l.Session.ID || ea.Session.EndReason != session.EndLogout {
			t.Errorf("session %+v", ea.Session)
		}
	})
	t.Run("no hand-off", func(t *testing.T) {
		newAPIEnv(t).do("POST", "/v1/tickets/redeem", map[string]string{"ticket": "x"}).wantError(t, http.StatusServiceUnavailable, client.CodeUnavailable)
	})
}

// withCookie is the request header of a ussync_session cookie.
func withCookie(token string) []string { return []string{"Cookie", cookieSession + "=" + token} }

func TestPublic_WhoamiAuthLogout(t *testing.T) {
	kr := testKeyring(t)
	e := newHoEnv(t, kr, "site-a", siteAURL)
	e.do("PUT", "/v1/users/ann@example.com", `{"verified_via":"registration","login":"ann","display_name":"Ann A."}`).want(t, http.StatusOK, nil)
	l := e.login(t, "ann@example.com", true)
	member, foreign := []string{"Origin", "https://c.example"}, []string{"Origin", "https://evil.example"}

	t.Run("whoami", func(t *testing.T) {
		var who struct {
			Email, Login string
			DisplayName  string `json:"display_name"`
			Session      sessionJSON
		}
		r := e.get("ussync/v1/whoami", append(withCookie(l.Token), member...)...)
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &who) != nil {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		if who.Email != "ann@example.com" || who.Login != "ann" || who.DisplayName != "Ann A." || who.Session.ID != l.Session.ID || !who.Session.Active {
			t.Errorf("whoami %+v", who)
		}
		if r.Header.Get("Access-Control-Allow-Origin") != "https://c.example" || r.Header.Get("Access-Control-Allow-Credentials") != "true" ||
			!strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("CORS headers for a member: %v", r.Header)
		}
		r = e.get("ussync/v1/whoami", append(withCookie(l.Token), foreign...)...)
		if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("CORS headers for a foreign origin: %d %v", r.Status, r.Header)
		}
		for _, o := range []string{"null", "http://c.example", "https://c.example:8443", "https://c.example.evil.example"} {
			if r := e.get("ussync/v1/whoami", "Origin", o); r.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("Origin %s allowed", o)
			}
		}
		e.get("ussync/v1/whoami").refusal(t, http.StatusUnauthorized, client.CodeNoSession)
		e.get("ussync/v1/whoami", withCookie("not-a-token")...).refusal(t, http.StatusUnauthorized, client.CodeNoSession)
		e.get("ussync/v1/whoami", withCookie(strings.Repeat("a", 5000))...).refusal(t, http.StatusUnauthorized, client.CodeNoSession)
		if r := e.get("ussync/v1/whoami"); r.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("WWW-Authenticate %q on the public listener", r.Header.Get("WWW-Authenticate"))
		}
		// A stale cookie beside the live one (nested paths) is skipped.
		if r := e.get("ussync/v1/whoami", "Cookie", cookieSession+"=stale; "+cookieSession+"="+l.Token); r.Status != http.StatusOK {
			t.Errorf("two cookies: %d", r.Status)
		}
	})
	t.Run("preflight", func(t *testing.T) {
		for _, path := range []string{"ussync/v1/whoami", "ussync/v1/logout"} {
			r := e.pubDo("OPTIONS", path, "Origin", "http://b.example", "Access-Control-Request-Method", "POST")
			if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "http://b.example" ||
				r.Header.Get("Access-Control-Allow-Credentials") != "true" || r.Header.Get("Access-Control-Allow-Methods") == "" {
				t.Errorf("%s member preflight: %d %v", path, r.Status, r.Header)
			}
			r = e.pubDo("OPTIONS", path, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
			r.refusal(t, http.StatusForbidden, client.CodeCSRF)
			if r.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s foreign preflight allowed", path)
			}
		}
	})
	t.Run("auth", func(t *testing.T) {
		for _, m := range []string{"GET", "HEAD", "POST", "DELETE"} {
			r := e.pubDo(m, "ussync/v1/auth", withCookie(l.Token)...)
			if r.Status != http.StatusOK || r.Header.Get("X-Ussync-Email") != "ann@example.com" || r.Header.Get("X-Ussync-Session") != l.Session.ID {
				t.Errorf("%s auth: %d %v", m, r.Status, r.Header)
			}
		}
		r := e.get("ussync/v1/auth")
		r.refusal(t, http.StatusUnauthorized, client.CodeNoSession)
		if r.Header.Get("X-Ussync-Email") != "" {
			t.Error("a 401 names a user")
		}
	})
	t.Run("logout CSRF", func(t *testing.T) {
		for _, hdr := range [][]string{nil, foreign, {"Referer", "https://evil.example/page"}, {"Origin", "null"}, {"Origin", "https://evil.example", "Referer", "http://a.example/"}} {
			e.pubDo("POST", "ussync/v1/logout", append(withCookie(l.Token), hdr...)...).refusal(t, http.StatusForbidden, client.CodeCSRF)
		}
		if code, _, _ := e.checkSession(t, l.Session.ID); code != http.StatusOK {
			t.Fatalf("a refused logout ended the session: %d", code)
		}
		e.get("ussync/v1/logout", member...).refusal(t, http.StatusMethodNotAllowed, client.CodeMethodNotAllowed)
	})
	t.Run("logout this session", func(t *testing.T) {
		other := e.login(t, "ann@example.com", true)
		r := e.pubDo("POST", "ussync/v1/logout", append(withCookie(l.Token), "Referer", "http://b.example/account")...)
		if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `{"ended":1}` {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		if c := r.cookie(cookieSession); c == nil || c.MaxAge != -1 || c.Value != "" || c.Path != "/" {
			t.Errorf("the cookie is not cleared: %q", r.Header.Values("Set-Cookie"))
		}
		if code, ec, _ := e.checkSession(t, l.Session.ID); code != http.StatusGone || ec != client.CodeSessionEnded {
			t.Errorf("after logout: %d %s", code, ec)
		}
		if code, _, _ := e.checkSession(t, other.Session.ID); code != http.StatusOK {
			t.Errorf("the other session ended: %d", code)
		}
		// Again: nothing left to end, still 200.
		r = e.pubDo("POST", "ussync/v1/logout", append(withCookie(l.Token), member...)...)
		if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `{"ended":0}` {
			t.Errorf("second logout: %d %s", r.Status, r.Body)
		}
		t.Run("everywhere", func(t *testing.T) {
			third := e.login(t, "ann@example.com", true)
			e.pubDo("POST", "ussync/v1/logout?everywhere=2", append(withCookie(third.Token), member...)...).refusal(t, http.StatusBadRequest, client.CodeInvalidField)
			r := e.pubDo("POST", "ussync/v1/logout?everywhere=1", append(withCookie(third.Token), member...)...)
			if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `{"ended":2}` {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			for _, id := range []string{other.Session.ID, third.Session.ID} {
				if code, _, _ := e.checkSession(t, id); code != http.StatusGone {
					t.Errorf("session %s survived: %d", id[:8], code)
				}
			}
		})
	})
}

func TestPublic_Routing(t *testing.T) {
	kr := testKeyring(t)
	e := newHoEnv(t, kr, "site-a", "http://a.example/blog/")
	root := func(method, path string) *pubResponse {
		defer func(b string) { e.base = b }(e.base)
		e.base = e.pub.URL + "/"
		return e.pubDo(method, path)
	}
	if r := root("GET", "healthz"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"ok"`) {
		t.Errorf("healthz: %d %s", r.Status, r.Body)
	}
	root("POST", "healthz").refusal(t, http.StatusMethodNotAllowed, client.CodeMethodNotAllowed)
	for _, p := range []string{"ussync/v1/whoami", "shop/ussync/v1/whoami", "blog/ussync/v1/nothing", "blog/ussync/v1/sync/", "blog/ussync/v2/sync", "blog/ussync/v1/hop/x"} {
		root("GET", p).refusal(t, http.StatusNotFound, client.CodeNotFound)
	}
	e.get("ussync/v1/whoami").refusal(t, http.StatusUnauthorized, client.CodeNoSession)
	r := e.pubDo("DELETE", "ussync/v1/sync")
	r.refusal(t, http.StatusMethodNotAllowed, client.CodeMethodNotAllowed)
	if r.Header.Get("Allow") != "GET" {
		t.Errorf("Allow %q", r.Header.Get("Allow"))
	}
	if r := e.pubDo("PUT", "ussync/v1/whoami"); r.Header.Get("Allow") != "GET, OPTIONS" {
		t.Errorf("Allow %q", r.Header.Get("Allow"))
	}
	// The cookie is scoped to the site's path.
	tk, _ := e.ticketFor(t, "site-a", "ann@example.com", "")
	if c := e.get(syncPath(url.Values{"t": {tk}})).cookie(cookieSession); c == nil || c.Path != "/blog/" {
		t.Errorf("cookie %+v", c)
	}
}

func TestPublic_HostileQueries(t *testing.T) {
	kr := testKeyring(t)
	e := newHoEnv(t, kr, "site-a", siteAURL)
	tk, _ := e.ticketFor(t, "site-a", "ann@example.com", "")
	paths := []string{"ussync/v1/sync", "ussync/v1/hop", "ussync/v1/hop/ask", "ussync/v1/hop/done", "ussync/v1/whoami", "ussync/v1/auth"}
	queries := []string{
		"t=" + strings.Repeat("A", 200_000),
		"t=" + strings.Repeat("%41", 5000),
		"t=%zz", "t=a;b", "t=a&t=b", "t=" + tk + "&t=" + tk, "next=a&next=b", "h=a&h=b", "return=a&return=b",
		"c=" + strings.Repeat(".", 500), "c=....", "c=" + tk + "." + tk, "m=IFRAME", "m=iframe&m=iframe",
		"t=%00", "t=%0d%0aSet-Cookie:%20x=1", "next=%0d%0aLocation:%20https://evil.example/", "next=http://a.example/%0d%0a",
		"h=" + tk, "h=" + strings.Repeat("_", crypto.MaxTicketBytes), "return=javascript:alert(1)", "return=http://a.example/x%00",
		"t=" + tk + "&next=" + strings.Repeat("x", 10_000), "return=http://a.example/" + strings.Repeat("y", 3000),
		"everywhere=%ff", "%", "&&&", "=", "t", "t=&c=&next=&m=",
	}
	check := func(path, q string) {
		t.Helper()
		r := e.get(path + "?" + q)
		if r.Status >= 500 || r.Status < 300 && path == "ussync/v1/sync" {
			t.Errorf("GET %s?%.60s: %d %.200s", path, q, r.Status, r.Body)
		}
		if len(r.Header.Values("Set-Cookie")) != 0 && path != "ussync/v1/hop" {
			t.Errorf("GET %s?%.60s set a cookie", path, q)
		}
	}
	for _, p := range paths {
		for _, q := range queries {
			check(p, q)
		}
	}
	// Random queries from an alphabet of the characters that matter.
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "tcmhnext=&;.%0aZ_-+/:?#[]@!$'()*,~\"<>\\^`{|} "
	for i := 0; i < 400; i++ {
		b := make([]byte, rng.IntN(120))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		q := url.PathEscape(string(b)) // what a client can send on the request line
		q = strings.NewReplacer("%3D", "=", "%26", "&", "%3B", ";", "%25", "%").Replace(q)
		check(paths[i%len(paths)], q)
	}
	// A request line too large for the server gets net/http's own 431
	// (before any handler: no security headers), still not a 5xx.
	resp, err := e.pub.Client().Get(e.base + "ussync/v1/sync?t=" + strings.Repeat("A", 2<<20))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 2 MiB query: %d", resp.StatusCode)
	}
}

func TestClientOf(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		remote string
		xff    []string
		proto  string
		want   string
		https  bool
	}{
		{"192.0.2.1:5000", nil, "", "192.0.2.1", false},
		{"192.0.2.1:5000", []string{"198.51.100.7"}, "https", "192.0.2.1", false}, // untrusted socket: headers ignored
		{"10.1.2.3:5000", []string{"198.51.100.7"}, "https", "198.51.100.7", true},
		{"10.1.2.3:5000", []string{"203.0.113.9, 198.51.100.7"}, "", "198.51.100.7", false}, // rightmost untrusted
		{"10.1.2.3:5000", []string{"198.51.100.7, 10.9.9.9"}, "", "198.51.100.7", false},    // trusted hops skipped
		{"10.1.2.3:5000", []string{"198.51.100.7", "10.9.9.9"}, "", "198.51.100.7", false},  // several header lines
		{"10.1.2.3:5000", []string{"10.8.8.8, 10.9.9.9"}, "", "10.8.8.8", false},            // all trusted: the leftmost
		{"10.1.2.3:5000", []string{"garbage, 198.51.100.7"}, "", "198.51.100.7", false},
		{"10.1.2.3:5000", []string{"198.51.100.7, garbage"}, "", "10.1.2.3", false}, // stop at what is not an address
		{"10.1.2.3:5000", []string{"::ffff:198.51.100.7"}, "HTTPS, http", "198.51.100.7", true},
		{"[::1]:5000", []string{"2001:db8::1"}, "", "2001:db8::1", false},
		{"[::ffff:192.0.2.1]:5000", nil, "", "192.0.2.1", false},
		{"not an address", []string{"198.51.100.7"}, "", "", false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, x := range tc.xff {
			r.Header.Add("X-Forwarded-For", x)
		}
		if tc.proto != "" {
			r.Header.Set("X-Forwarded-Proto", tc.proto)
		}
		c := clientOf(r, trusted)
		if c.String() != tc.want || c.HTTPS != tc.https {
			t.Errorf("%s %q %q: got %s https=%v, want %s https=%v", tc.remote, tc.xff, tc.proto, c, c.HTTPS, tc.want, tc.https)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Forwarded-For", strings.Repeat("10.0.0.2, ", 10_000)+"198.51.100.7")
	if c := clientOf(r, trusted); c.String() != "198.51.100.7" {
		t.Errorf("long header: %s", c)
	}
	r.Header.Set("X-Forwarded-For", "198.51.100.7, "+strings.Repeat("10.0.0.2, ", 100)+"10.0.0.3")
	if c := clientOf(r, trusted); c.String() != "10.0.0.2" {
		t.Errorf("past the hop limit: %s", c)
	}
}

func TestTicketPayload_Encoding(t *testing.T) {
	// A small payload stays plain JSON; a long one is compressed.
	for _, c := range []struct {
		ret     string
		deflate bool
	}{
		{"http://a.example/x", false},
		{"http://a.example/" + strings.Repeat("ab", deflateAbove), true},
	} {
		p := ticketPayload{Kind: ticketKindHop, Return: c.ret, Ask: []string{"b", "c"}}
		enc, err := encodePayload(&p)
		if err != nil || (enc[0] == payloadDeflate) != c.deflate || (c.deflate && len(enc) > deflateAbove) {
			t.Fatalf("encode %d bytes: %v, %d bytes %.20x", len(c.ret), err, len(enc), enc)
		}
		var got ticketPayload
		if err := decodePayload(enc, &got); err != nil || got.Return != p.Return || len(got.Ask) != 2 {
			t.Fatalf("decode: %v %+v", err, got)
		}
	}
	var got ticketPayload
	if err := decodePayload([]byte(`{"k":"hop","x":1}`), &got); err != nil {
		t.Errorf("plain JSON with an unknown field: %v", err)
	}
	// An inflation bomb is cut off.
	big, _ := encodePayload(&ticketPayload{Return: strings.Repeat("a", maxPayloadBytes*4)})
	if err := decodePayload(big, &got); err == nil {
		t.Error("an oversized payload decoded")
	}
	for _, b := range [][]byte{nil, {payloadDeflate}, {payloadDeflate, 0xff, 0xff}, []byte("[1]")} {
		if err := decodePayload(b, &got); err == nil {
			t.Errorf("%x decoded", b)
		}
	}
}

// BenchmarkTicket_IssueRedeem seals a session ticket and redeems it in full:
// open, checks, replay cache (a Badger write), merge of the carried records
// and the state check.
func BenchmarkTicket_IssueRedeem(b *testing.B) {
	kr := testKeyring(b)
	e := newHoEnv(b, kr, "site-a", siteAURL)
	l := e.login(b, "ann@example.com", true)
	s, u := e.session(b, l.Session.ID)
	b.ReportAllocs()
	b.ResetTimer()
	br := &browser{cookies: []*http.Cookie{{Name: cookieNonce, Value: testNonce}}}
	for b.Loop() {
		tk, err := e.h.sealSession("site-a", &s, &u, testBinding("site-a"), "")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.h.redeem(tk, br); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHandoff_ChainURLLength holds a chain through 30 sites under 2.5 KB:
// one chain ticket whatever the number of sites (a proxy's request line is
// commonly limited to 8 KB; one ticket per site outgrew it at ten), and the
// first pass's bind state, once every site has written its commitment,
// under the same bound.
func TestHandoff_ChainURLLength(t *testing.T) {
	e := newHoEnv(t, testKeyring(t), "site-a", siteAURL)
	_, id, err := crypto.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	at := e.store.Clock().Now()
	s := session.Session{
		ID: id, Email: "margaret.hamilton-smith@example.com", Site: "shop-example-com",
		IP: "203.0.113.77", Created: at, ExpiresAt: e.clock.Now().Add(14 * 24 * time.Hour).UnixMilli(),
		UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36 Edg/156.0.0.0",
	}
	u := session.User{
		Email: s.Email, Created: at,
		Login:       session.Set("margaret.hamilton", at, "shop-example-com"),
		DisplayName: session.Set("Margaret Hamilton-Smith", at, "shop-example-com"),
		Verified:    session.Set(session.Verification{OK: true, Method: "registration"}, at, "shop-example-com"),
	}
	payload, err := sessionPayload(&s, &u)
	if err != nil {
		t.Fatal(err)
	}
	route := make([]string, 30)
	for i := range route {
		route[i] = fmt.Sprintf("site-%02d-example-c", i) // 16 characters
	}
	binds := make([]crypto.Binding, len(route))
	for i, name := range route {
		binds[i] = testBinding(name)
	}
	ret := "https://shop.example.com/account/orders?tab=recent"
	tk, err := e.h.seal(ticketKindSession, crypto.Ticket{Route: route, Bindings: binds, SessionID: s.ID, ClientIP: s.IP, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	link := syncLink(e.h.self, tk, ret, false)
	if len(link) > 2560 {
		t.Errorf("a chain URL through 30 sites is %d characters", len(link))
	}
	// The first pass: the bind state as the last site of the route sends
	// it back, every commitment written.
	st := ticketPayload{Kind: ticketKindBind, Route: route, Bound: make([]string, len(route)), Return: ret}
	for i := range st.Bound {
		st.Bound[i] = binds[i].String()
	}
	raw, err := e.h.sealBindState(route, ret, s.ID, s.IP, "")
	if err != nil {
		t.Fatal(err)
	}
	opened, err := e.kr.OpenTicket(raw, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	full, err := e.h.resealBindState(opened, &st)
	if err != nil {
		t.Fatal(err)
	}
	back := e.h.self.link(pathChain, url.Values{"h": {full}})
	if len(back) > 2560 {
		t.Errorf("a bind state through 30 sites is %d characters", len(back))
	}
	one, err := e.h.sealSession("site-b", &s, &u, testBinding("site-b"), s.IP)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chain URL through 30 sites: %d characters (payload %d bytes); its bind state back: %d; a ticket for one site: %d",
		len(link), len(payload), len(back), len(one))
}

// BenchmarkAPI_SessionCheckAlias is BenchmarkAPI_SessionCheckHandler for a
// cookie this site minted when a hand-off brought the session (an alias,
// what every site but the one that logged the browser in holds): one more
// map lookup than the session's own id.
func BenchmarkAPI_SessionCheckAlias(b *testing.B) {
	e := newHoEnv(b, testKeyring(b), "site-a", siteAURL)
	tk, _ := e.ticketFor(b, "site-a", "bench@example.com", "")
	rd, err := e.h.redeem(tk, &browser{cookies: []*http.Cookie{{Name: cookieNonce, Value: testNonce}}})
	if err != nil {
		b.Fatal(err)
	}
	h := e.srv.Config.Handler
	req := httptest.NewRequest("GET", "/v1/sessions/"+crypto.SessionID(rd.Token), nil)
	req.Header.Set("Authorization", "Bearer "+testAPIToken)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// FuzzDecodePayload exercises the decoder of a session ticket's and a hop
// request's payload (JSON, or deflated JSON behind payloadDeflate), which
// a member holding the cluster secret can fill with anything: it must
// never panic, and what it accepts must encode again into a payload that
// decodes to the same encoding; the
// checks a redemption makes of the records (Record.Validate) must not
// panic on them either.
func FuzzDecodePayload(f *testing.F) {
	at := session.MakeHLC(1_700_000_000_000, 0)
	s := session.Session{Email: "ann@example.com", Site: "site-a", IP: "192.0.2.1", UserAgent: strings.Repeat("ua ", 200),
		Created: at, ExpiresAt: at.Time().Add(time.Hour).UnixMilli()}
	u := session.User{Email: "ann@example.com", Login: session.Set("ann", at, "site-a"), RevokedBefore: at}
	for _, p := range []ticketPayload{
		{Session: &s, User: &u}, // over deflateAbove: compressed
		{Session: &session.Session{Email: "bob@example.com", Created: at}},
		{Kind: ticketKindHop, Return: "http://a.example/x", Ask: []string{"site-b", "site-c"}},
	} {
		enc, err := encodePayload(&p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	for _, s := range []string{"", "{}", `{"s":{}}`, `{"s":{"email":"a@b.c","expires_at":-1},"u":{"revoked_before":18446744073709551615}}`,
		`{"k":"hop","a":["a","a"]}`, "\x01", "\x01\xff\xff", "\x01\x4b\x4c\x04\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var p ticketPayload
		if err := decodePayload(raw, &p); err != nil {
			return
		}
		if p.Session != nil {
			_ = (session.Record{Session: p.Session}).Validate()
		}
		if p.User != nil {
			_ = (session.Record{User: p.User}).Validate()
		}
		enc, err := encodePayload(&p)
		if err != nil {
			return // a value JSON cannot hold (a NaN cannot arrive: JSON has none)
		}
		var again ticketPayload
		if err := decodePayload(enc, &again); err != nil {
			t.Fatalf("re-encoded payload %q does not decode: %v", enc, err)
		}
		enc2, err := encodePayload(&again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("payload not stable under a round trip:\n%q\n%q (%v)", enc, enc2, err)
		}
	})
}

// TestPublic_StepRefusalPage: a refused hand-off step opened by a browser
// (a top-level navigation, or Accept: text/html) is a small HTML page with
// the same status: what happened and what to do, escaped, a link back to
// the site, the code in X-Ussync-Refused, a CSP that allows only its style
// (framed by member sites only). An API client keeps the JSON error.
func TestPublic_StepRefusalPage(t *testing.T) {
	kr := testKeyring(t)
	e := newHoEnv(t, kr, "site-a", siteAURL)
	tk, _ := e.ticketFor(t, "site-a", "ann@example.com", "")
	nonce := e.nonce
	e.nonce = "" // another browser: it holds no nonce here
	navigate := []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}
	r := e.get(syncPath(url.Values{"t": {tk}}), navigate...)
	body := string(r.Body)
	csp := r.Header.Get("Content-Security-Policy")
	if r.Status != http.StatusForbidden || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") ||
		r.Header.Get(refusedHeader) != client.CodeOtherBrowser {
		t.Fatalf("other browser, navigating: %d %v\n%s", r.Status, r.Header, body)
	}
	if !strings.Contains(body, "Log in again on this site") || !strings.Contains(body, `href="`+siteAURL+`"`) ||
		!strings.Contains(body, `Error code: <code id="code">`+client.CodeOtherBrowser+`</code>`) ||
		strings.Contains(body, `"error"`) || strings.Contains(body, "<script") {
		t.Errorf("the page: %s", body)
	}
	if !strings.HasPrefix(csp, "default-src 'none'; style-src 'sha256-") || !strings.Contains(csp, "frame-ancestors ") ||
		strings.Contains(csp, "unsafe") || r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers: %v", r.Header)
	}
	if len(r.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("a refusal set cookies: %q", r.Header.Values("Set-Cookie"))
	}
	// An API client (no navigation, JSON or nothing accepted) keeps JSON.
	for _, hdr := range [][]string{nil, {"Accept", "application/json"}, {"Accept", "application/json, text/html"}} {
		r := e.get(syncPath(url.Values{"t": {tk}}), hdr...)
		r.refusal(t, http.StatusForbidden, client.CodeOtherBrowser)
	}
	// A malformed ticket: 400, the text escaped (nothing of the query is
	// echoed).
	r = e.get(syncPath(url.Values{"t": {"<script>alert(1)</script>"}}), navigate...)
	if r.Status != http.StatusBadRequest || r.Header.Get(refusedHeader) != client.CodeTicketMalformed ||
		strings.Contains(string(r.Body), "<script") || !strings.Contains(string(r.Body), "Log in again") {
		t.Errorf("malformed, navigating: %d %v\n%s", r.Status, r.Header, r.Body)
	}
	// The right browser redeems the same ticket: the refusals used nothing.
	e.nonce = nonce
	if r := e.get(syncPath(url.Values{"t": {tk}}), navigate...); r.Status != http.StatusNoContent {
		t.Errorf("the right browser: %d %s", r.Status, r.Body)
	}
}
