package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// lockedBuffer collects a node's log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// verifyEnv is one started node whose mail goes to an SMTP sink, whose
// store clock the test moves and whose debug log is kept.
type verifyEnv struct {
	t     *testing.T
	n     *node.Node
	sink  *node.SMTPSink
	clock *session.ManualClock
	logs  *lockedBuffer
	token string
	http  *http.Client
	// secret is the cluster secret: what a member holds.
	secret string
}

func randomB64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// verifyConfig is a loopback node's config: mail through sink (none when
// nil), everything else on port 0.
func verifyConfig(t *testing.T, sink *node.SMTPSink, token string) node.Config {
	cfg := node.DefaultConfig()
	cfg.Node.Name = "n0"
	cfg.Node.DataDir = t.TempDir()
	cfg.Node.Profile = string(gossip.ProfileLocal)
	cfg.Site.URL = "http://site-0.localhost/"
	cfg.Gossip.Bind = "127.0.0.1:0"
	cfg.Gossip.Secrets = []string{randomB64(32)}
	cfg.API.Listen = "127.0.0.1:0"
	cfg.API.Token = token
	cfg.Public.Listen = "127.0.0.1:0"
	if sink != nil {
		cfg.SMTP = sink.SMTPSection()
	}
	return cfg
}

func newVerifyEnv(t *testing.T, sink *node.SMTPSink, mods ...func(*node.Config)) *verifyEnv {
	t.Helper()
	e := &verifyEnv{
		t:     t,
		sink:  sink,
		clock: session.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		logs:  &lockedBuffer{},
		token: "verify-test-token-0123456789",
		http: &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
	cfg := verifyConfig(t, sink, e.token)
	for _, m := range mods {
		m(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	e.secret = cfg.Gossip.Secrets[0]
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	n.Now = e.clock.Now
	if err := n.Start(context.Background()); err != nil {
		n.Close(context.Background())
		t.Fatalf("start: %v", err)
	}
	e.n = n
	t.Cleanup(func() {
		n.Close(context.Background())
		if t.Failed() {
			t.Logf("node log:\n%s", e.logs.String())
		}
	})
	return e
}

type verifyAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a verifyAnswer) errorCode() string {
	var b struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(a.Body, &b)
	return b.Error.Code
}

// api calls the private API; body nil sends none.
func (e *verifyEnv) api(method, path string, body any) verifyAnswer {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+e.n.APIAddr()+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.do(req)
}

func (e *verifyEnv) do(req *http.Request) verifyAnswer {
	e.t.Helper()
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return verifyAnswer{resp.StatusCode, resp.Header, b}
}

// open opens a verification link (made for the site URL) on the node's
// public listener, as the site's reverse proxy would.
func (e *verifyEnv) open(link string) verifyAnswer {
	e.t.Helper()
	return openOn(e.t, e.http, e.n.PublicAddr(), link)
}

func openOn(t *testing.T, c *http.Client, addr, link string) verifyAnswer {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("link %q: %v", link, err)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+u.RequestURI(), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return verifyAnswer{resp.StatusCode, resp.Header, b}
}

var (
	reFormLink = regexp.MustCompile(`name="c" value="([^"]+)"`)
	reFormCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// confirm does what a person does with a verification link: open it (a
// GET shows a confirmation page and verifies nothing), then press the
// page's button (a POST of the link with the page's CSRF token and
// cookie). It returns the answer of the POST, or of the GET when it shows
// no button.
func (e *verifyEnv) confirm(link string) verifyAnswer {
	e.t.Helper()
	page := e.open(link)
	c, token := reFormLink.FindSubmatch(page.Body), reFormCSRF.FindSubmatch(page.Body)
	var ck *http.Cookie
	for _, x := range (&http.Response{Header: page.Header}).Cookies() {
		if x.Name == "ussync_verify" {
			ck = x
		}
	}
	if page.Status != http.StatusOK || c == nil || token == nil || ck == nil {
		return page
	}
	return e.post(html.UnescapeString(string(c[1])), html.UnescapeString(string(token[1])), ck.Value, "null")
}

// post sends the confirmation page's form: the link's token c, the CSRF
// token, the page's cookie (none when ""), from origin (none when "").
func (e *verifyEnv) post(c, token, cookie, origin string) verifyAnswer {
	e.t.Helper()
	form := url.Values{"c": {c}, "csrf": {token}}
	req, _ := http.NewRequest("POST", "http://"+e.n.PublicAddr()+"/ussync/v1/verify", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "ussync_verify", Value: cookie})
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return e.do(req)
}

func (e *verifyEnv) putUser(email string) {
	e.t.Helper()
	if a := e.api("PUT", "/v1/users/"+email, map[string]any{"login": "u", "display_name": "U"}); a.Status != http.StatusOK {
		e.t.Fatalf("PUT %s: %d %s", email, a.Status, a.Body)
	}
}

func (e *verifyEnv) request(email string) verifyAnswer {
	e.t.Helper()
	return e.api("POST", "/v1/users/"+email+"/verification", nil)
}

func (e *verifyEnv) verify(email, code string) verifyAnswer {
	e.t.Helper()
	return e.api("POST", "/v1/users/"+email+"/verify", map[string]string{"code": code})
}

// lastMail parses the newest message the sink received, checking it is
// for to.
func (e *verifyEnv) lastMail(to string) node.ParsedMail {
	e.t.Helper()
	msgs := e.sink.Messages()
	if len(msgs) == 0 {
		e.t.Fatal("no message arrived")
	}
	m := msgs[len(msgs)-1]
	if len(m.To) != 1 || m.To[0] != to {
		e.t.Fatalf("the last message is for %v, want %s", m.To, to)
	}
	pm := node.ParseMail(e.t, m.Data)
	if pm.Code == "" || pm.Link == "" {
		e.t.Fatalf("no code or link in the text part:\n%s", pm.Text)
	}
	return pm
}

type verifiedUser struct {
	Email       string `json:"email"`
	Verified    bool   `json:"verified"`
	VerifiedVia string `json:"verified_via"`
	Bound       bool   `json:"bound"`
}

func (e *verifyEnv) user(email string) verifiedUser {
	e.t.Helper()
	a := e.api("GET", "/v1/users/"+email, nil)
	var u verifiedUser
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &u) != nil {
		e.t.Fatalf("GET user: %d %s", a.Status, a.Body)
	}
	return u
}

func wantStatus(t *testing.T, what string, a verifyAnswer, status int, code string) {
	t.Helper()
	if a.Status != status || (code != "" && a.errorCode() != code && a.Header.Get("X-Ussync-Refused") != code) {
		t.Fatalf("%s: %d %s (refused %q), want %d %s", what, a.Status, a.Body, a.Header.Get("X-Ussync-Refused"), status, code)
	}
}

// otherCode is a wrong code: code with its last digit changed.
func otherCode(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n/10)*10+(n%10+1)%10)
}

func TestVerify_Code(t *testing.T) {
	sink := node.NewSMTPSink(t, node.SinkAuth("relay", "relay-password-1"))
	e := newVerifyEnv(t, sink)
	const email = "ann@b.example"
	e.putUser(email)

	a := e.request(email)
	if a.Status != http.StatusAccepted || strings.TrimSpace(string(a.Body)) != `{"status":"sent"}` {
		t.Fatalf("request: %d %s", a.Status, a.Body)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
	pm := e.lastMail(email)
	if pm.Subject != "Your verification code" {
		t.Errorf("Subject %q", pm.Subject)
	}
	if f := pm.Header.Get("From"); !strings.Contains(f, "no-reply@site-a.example") {
		t.Errorf("From %q", f)
	}
	if !strings.HasPrefix(pm.Link, "http://site-0.localhost/ussync/v1/verify?c=") {
		t.Errorf("link %q is not under the site URL", pm.Link)
	}
	if !strings.Contains(pm.HTML, pm.Code) || !strings.Contains(pm.HTML, pm.Link) {
		t.Errorf("the HTML part lacks the code or the link:\n%s", pm.HTML)
	}
	if !strings.Contains(pm.Text, "15 minutes") {
		t.Errorf("the text does not say how long the code lives:\n%s", pm.Text)
	}

	wantStatus(t, "no code", e.api("POST", "/v1/users/"+email+"/verify", map[string]string{}), http.StatusBadRequest, "invalid_field")
	wantStatus(t, "bad address", e.verify("not-an-address", pm.Code), http.StatusBadRequest, "invalid_email")
	wantStatus(t, "wrong code", e.verify(email, otherCode(pm.Code)), http.StatusBadRequest, "invalid_code")
	if e.user(email).Verified {
		t.Fatal("verified by a wrong code")
	}

	// Typed as people copy it, with a space.
	a = e.verify(email, pm.Code[:3]+" "+pm.Code[3:])
	var u verifiedUser
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &u) != nil || !u.Verified || u.VerifiedVia != "code" || u.Email != email {
		t.Fatalf("right code: %d %s", a.Status, a.Body)
	}
	if got := e.user(email); !got.Verified || got.VerifiedVia != "code" {
		t.Errorf("user after verifying: %+v", got)
	}
	wantStatus(t, "the code a second time", e.verify(email, pm.Code), http.StatusBadRequest, "invalid_code")

	// Verified: the next login travels.
	a = e.api("POST", "/v1/sessions", map[string]any{"email": email})
	if a.Status != http.StatusCreated || !strings.Contains(string(a.Body), `"synced":true`) {
		t.Errorf("login after verifying: %d %s", a.Status, a.Body)
	}
}

func TestVerify_Expires(t *testing.T) {
	sink := node.NewSMTPSink(t)
	e := newVerifyEnv(t, sink)
	e.putUser("early@b.example")
	e.putUser("late@b.example")
	wantStatus(t, "request", e.request("early@b.example"), http.StatusAccepted, "")
	early := e.lastMail("early@b.example")
	wantStatus(t, "request", e.request("late@b.example"), http.StatusAccepted, "")
	late := e.lastMail("late@b.example")

	e.clock.Add(15*time.Minute - time.Second)
	wantStatus(t, "a code just before its expiry", e.verify("early@b.example", early.Code), http.StatusOK, "")
	e.clock.Add(time.Second)
	wantStatus(t, "an expired code", e.verify("late@b.example", late.Code), http.StatusBadRequest, "invalid_code")
	wantStatus(t, "an expired link", e.open(late.Link), http.StatusGone, "ticket_expired")
	if e.user("late@b.example").Verified {
		t.Error("verified after expiry")
	}
}

func TestVerify_LocksAfterMaxAttempts(t *testing.T) {
	sink := node.NewSMTPSink(t)
	e := newVerifyEnv(t, sink)
	const email = "bob@b.example"
	e.putUser(email)
	wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
	pm := e.lastMail(email)
	wrong := otherCode(pm.Code)
	for i := 1; i <= 5; i++ {
		wantStatus(t, fmt.Sprintf("wrong code %d", i), e.verify(email, wrong), http.StatusBadRequest, "invalid_code")
	}
	wantStatus(t, "the right code once locked", e.verify(email, pm.Code), http.StatusTooManyRequests, "code_locked")
	if e.user(email).Verified {
		t.Fatal("verified while locked")
	}

	// A new code unlocks, but the request is rate-limited as any other.
	a := e.request(email)
	wantStatus(t, "a new code at once", a, http.StatusTooManyRequests, "rate_limited")
	if a.Header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After %q, want 60", a.Header.Get("Retry-After"))
	}
	e.clock.Add(time.Minute)
	wantStatus(t, "a new code a minute later", e.request(email), http.StatusAccepted, "")
	pm2 := e.lastMail(email)
	if pm2.Code != pm.Code { // one in a million: the same code again
		wantStatus(t, "the old code", e.verify(email, pm.Code), http.StatusBadRequest, "invalid_code")
	}
	wantStatus(t, "the new code", e.verify(email, pm2.Code), http.StatusOK, "")
}

func TestVerify_RateLimits(t *testing.T) {
	sink := node.NewSMTPSink(t)
	e := newVerifyEnv(t, sink)
	const known, unknown = "known@b.example", "nobody@b.example"
	e.putUser(known)

	type step struct {
		after      time.Duration
		status     int
		retryAfter string
	}
	steps := []step{
		{0, http.StatusAccepted, ""},
		{30 * time.Second, http.StatusTooManyRequests, "30"},
		{30 * time.Second, http.StatusAccepted, ""}, // 1m
		{time.Minute, http.StatusAccepted, ""},      // 2m
		{time.Minute, http.StatusAccepted, ""},      // 3m
		{time.Minute, http.StatusAccepted, ""},      // 4m: the 5th in the hour
		{time.Minute, http.StatusTooManyRequests, "3300"},
		{55 * time.Minute, http.StatusAccepted, ""}, // the first left the window
	}
	for i, s := range steps {
		e.clock.Add(s.after)
		a, b := e.request(known), e.request(unknown)
		for _, x := range []verifyAnswer{a, b} {
			if x.Status != s.status || x.Header.Get("Retry-After") != s.retryAfter {
				t.Fatalf("step %d: %d Retry-After %q %s, want %d %q", i, x.Status, x.Header.Get("Retry-After"), x.Body, s.status, s.retryAfter)
			}
		}
		if !bytes.Equal(a.Body, b.Body) {
			t.Errorf("step %d: the answers differ:\n%s\n%s", i, a.Body, b.Body)
		}
	}
	var toKnown int
	for _, m := range sink.Messages() {
		if m.To[0] != known {
			t.Errorf("a message went to %v", m.To)
		}
		toKnown++
	}
	if toKnown != 6 {
		t.Errorf("%d messages, want 6", toKnown)
	}
}

// TestVerify_NoEnumeration: an address with no user gets the answers a
// user gets, and no message.
func TestVerify_NoEnumeration(t *testing.T) {
	sink := node.NewSMTPSink(t)
	e := newVerifyEnv(t, sink)
	const known, unknown = "known@b.example", "nobody@b.example"
	e.putUser(known)

	same := func(what string, a, b verifyAnswer) {
		t.Helper()
		if a.Status != b.Status || !bytes.Equal(a.Body, b.Body) || a.Header.Get("Retry-After") != b.Header.Get("Retry-After") {
			t.Fatalf("%s: known %d %s, unknown %d %s", what, a.Status, a.Body, b.Status, b.Body)
		}
	}
	same("no code requested", e.verify(known, "123456"), e.verify(unknown, "123456"))
	same("request", e.request(known), e.request(unknown))
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d messages, want 1 (none for the unknown address)", n)
	}
	wrong := otherCode(e.lastMail(known).Code)
	for i := 1; i <= 5; i++ {
		same(fmt.Sprintf("wrong code %d", i), e.verify(known, wrong), e.verify(unknown, wrong))
	}
	a, b := e.verify(known, wrong), e.verify(unknown, wrong)
	same("locked", a, b)
	wantStatus(t, "locked", b, http.StatusTooManyRequests, "code_locked")
	same("resend", e.request(known), e.request(unknown))
	if _, err := e.n.Store().User(unknown); err == nil {
		t.Error("a request created a user")
	}
}

// TestVerify_FailureBudget is issue 9's code guessing: wrong codes are
// capped per address per day (verification.max_failures_per_day, 10 by
// default) whatever the number of codes sent. Before, each resend reset
// the 5 tries of a code: about 600 guesses a day. The link still works.
func TestVerify_FailureBudget(t *testing.T) {
	sink := node.NewSMTPSink(t)
	e := newVerifyEnv(t, sink)
	const email = "guess@b.example"
	e.putUser(email)
	send := func() node.ParsedMail {
		t.Helper()
		e.clock.Add(time.Minute) // verification.resend_interval
		wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
		return e.lastMail(email)
	}
	// Two codes, five wrong tries each: ten, the day's budget.
	for range 2 {
		pm := send()
		for i := 1; i <= 5; i++ {
			wantStatus(t, fmt.Sprintf("wrong code %d", i), e.verify(email, otherCode(pm.Code)), http.StatusBadRequest, "invalid_code")
		}
		wantStatus(t, "the code once its tries are spent", e.verify(email, pm.Code), http.StatusTooManyRequests, "code_locked")
	}
	// A third code is locked from the start, the right one too: a resend
	// does not buy more guesses.
	pm := send()
	wantStatus(t, "a new code past the budget", e.verify(email, pm.Code), http.StatusTooManyRequests, "code_locked")
	if e.user(email).Verified {
		t.Fatal("verified past the budget")
	}
	// A day after the first failures, guesses are allowed again.
	e.clock.Add(24 * time.Hour)
	pm = send()
	wantStatus(t, "a code a day later", e.verify(email, pm.Code), http.StatusOK, "")

	t.Run("the link is no guess", func(t *testing.T) {
		const email = "link-past-budget@b.example"
		e.putUser(email)
		for range 3 {
			e.clock.Add(time.Minute)
			wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
			pm := e.lastMail(email)
			for range 5 {
				e.verify(email, otherCode(pm.Code))
			}
		}
		pm := e.lastMail(email)
		wantStatus(t, "the code", e.verify(email, pm.Code), http.StatusTooManyRequests, "code_locked")
		wantStatus(t, "the link", e.confirm(pm.Link), http.StatusOK, "")
	})
}

func TestVerify_Link(t *testing.T) {
	sink := node.NewSMTPSink(t)
	e := newVerifyEnv(t, sink)

	t.Run("verifies once, only by the page's button", func(t *testing.T) {
		const email = "link@b.example"
		e.putUser(email)
		wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
		pm := e.lastMail(email)

		// A bare GET (a mail scanner, a preview) verifies nothing: it
		// shows a page whose button posts.
		for range 2 {
			a := e.open(pm.Link)
			if a.Status != http.StatusOK || !strings.Contains(string(a.Body), `<form method="post"`) || strings.Contains(string(a.Body), "is verified") {
				t.Fatalf("open: %d %s", a.Status, a.Body)
			}
			if u := e.user(email); u.Verified {
				t.Fatalf("a GET of the link verified the address: %+v", u)
			}
			h := a.Header
			csp := h.Get("Content-Security-Policy")
			if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(csp, "default-src 'none'") ||
				!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self'") || h.Get("Referrer-Policy") != "no-referrer" ||
				h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers: %v", h)
			}
			// The CSP allows exactly the page's own style block.
			m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindSubmatch(a.Body)
			if m == nil {
				t.Fatal("no style block")
			}
			sum := sha256.Sum256(m[1])
			if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
				t.Errorf("CSP %q does not allow the page's style", csp)
			}
		}
		// Posts that did not come from the page this browser opened.
		page := e.open(pm.Link)
		c, token := string(reFormLink.FindSubmatch(page.Body)[1]), string(reFormCSRF.FindSubmatch(page.Body)[1])
		c = html.UnescapeString(c)
		var cookie string
		for _, x := range (&http.Response{Header: page.Header}).Cookies() {
			if x.Name == "ussync_verify" {
				cookie = x.Value
				if !x.HttpOnly || x.SameSite != http.SameSiteStrictMode || x.Path != "/ussync/v1/" {
					t.Errorf("the page's cookie: %q", page.Header.Values("Set-Cookie"))
				}
			}
		}
		other := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
		wantStatus(t, "a post without the page's cookie", e.post(c, token, "", ""), http.StatusForbidden, "csrf")
		wantStatus(t, "a post with another token", e.post(c, other, cookie, "null"), http.StatusForbidden, "csrf")
		wantStatus(t, "a post with another cookie", e.post(c, token, other, "null"), http.StatusForbidden, "csrf")
		wantStatus(t, "a post from another site", e.post(c, token, cookie, "https://evil.example"), http.StatusForbidden, "csrf")
		if u := e.user(email); u.Verified {
			t.Fatalf("a refused post verified the address: %+v", u)
		}
		a := e.post(c, token, cookie, "null")
		if a.Status != http.StatusOK || !strings.Contains(string(a.Body), "Your e-mail is verified") {
			t.Fatalf("confirm: %d %s", a.Status, a.Body)
		}
		if u := e.user(email); !u.Verified || u.VerifiedVia != "code" || !u.Bound {
			t.Errorf("user: %+v", u)
		}
		a = e.post(c, token, cookie, "null")
		wantStatus(t, "the button again", a, http.StatusConflict, "ticket_replayed")
		if !strings.Contains(string(a.Body), "already used") {
			t.Errorf("refusal page: %s", a.Body)
		}
		a = e.open(pm.Link)
		wantStatus(t, "the link again", a, http.StatusGone, "link_stale")
		if !strings.Contains(string(a.Body), "already used") {
			t.Errorf("refusal page: %s", a.Body)
		}
		wantStatus(t, "the code after the link", e.verify(email, pm.Code), http.StatusBadRequest, "invalid_code")
	})

	t.Run("refused", func(t *testing.T) {
		const email = "tamper@b.example"
		e.putUser(email)
		wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
		pm := e.lastMail(email)
		i := strings.Index(pm.Link, "c=") + 20
		flip := "A"
		if pm.Link[i] == 'A' {
			flip = "B"
		}
		wantStatus(t, "tampered", e.open(pm.Link[:i]+flip+pm.Link[i+1:]), http.StatusBadRequest, "ticket_tampered")
		wantStatus(t, "not a ticket", e.open("http://x/ussync/v1/verify?c=nonsense"), http.StatusBadRequest, "ticket_malformed")
		wantStatus(t, "no token", e.open("http://x/ussync/v1/verify"), http.StatusBadRequest, "ticket_malformed")
		req, _ := http.NewRequest("HEAD", "http://"+e.n.PublicAddr()+"/ussync/v1/verify?c=x", nil)
		wantStatus(t, "HEAD", e.do(req), http.StatusMethodNotAllowed, "")
		req, _ = http.NewRequest("POST", "http://"+e.n.PublicAddr()+"/ussync/v1/verify?c=x", nil)
		wantStatus(t, "a bare POST", e.do(req), http.StatusForbidden, "csrf")
		// A member holding the cluster secret seals the link again to
		// live a day: longer than verification.code_ttl plus the max
		// offset.
		u, _ := url.Parse(pm.Link)
		kr, err := crypto.ParseKeyring(e.secret + "\n")
		if err != nil {
			t.Fatal(err)
		}
		tk, err := kr.OpenTicket(u.Query().Get("c"), e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		tk.ExpiresAt = tk.IssuedAt.Add(23 * time.Hour)
		long, err := kr.SealTicket(tk)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "a link of a day", e.open("http://x/ussync/v1/verify?c="+long), http.StatusBadRequest, "ticket_lifetime")
		// None of that used the link up.
		wantStatus(t, "the real link", e.confirm(pm.Link), http.StatusOK, "")
	})

	t.Run("a newer code makes the link stale", func(t *testing.T) {
		const email = "stale@b.example"
		e.putUser(email)
		wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
		first := e.lastMail(email)
		e.clock.Add(time.Minute)
		wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
		second := e.lastMail(email)
		wantStatus(t, "the first link", e.open(first.Link), http.StatusGone, "link_stale")
		wantStatus(t, "the second link", e.confirm(second.Link), http.StatusOK, "")
	})

	t.Run("a typed code makes the link stale", func(t *testing.T) {
		const email = "typed@b.example"
		e.putUser(email)
		wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
		pm := e.lastMail(email)
		wantStatus(t, "code", e.verify(email, pm.Code), http.StatusOK, "")
		wantStatus(t, "link", e.open(pm.Link), http.StatusGone, "link_stale")
	})

	t.Run("works while the code is locked", func(t *testing.T) {
		const email = "locked@b.example"
		e.putUser(email)
		wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
		pm := e.lastMail(email)
		for range 5 {
			e.verify(email, otherCode(pm.Code))
		}
		wantStatus(t, "locked", e.verify(email, pm.Code), http.StatusTooManyRequests, "code_locked")
		wantStatus(t, "link", e.confirm(pm.Link), http.StatusOK, "")
	})
}

func TestVerify_MailFailure(t *testing.T) {
	sink := node.NewSMTPSink(t)
	e := newVerifyEnv(t, sink)
	const email = "fail@b.example"
	e.putUser(email)
	sink.Fail(errors.New("mailbox unavailable"))
	wantStatus(t, "request", e.request(email), http.StatusBadGateway, "mail_failed")
	pm := e.lastMail(email) // the sink kept what it refused
	sink.Fail(nil)
	wantStatus(t, "the code of the failed message", e.verify(email, pm.Code), http.StatusBadRequest, "invalid_code")
	wantStatus(t, "the link of the failed message", e.open(pm.Link), http.StatusGone, "link_stale")
	if !strings.Contains(e.logs.String(), "mailbox unavailable") {
		t.Error("the server's answer is not logged")
	}
	e.clock.Add(time.Minute)
	wantStatus(t, "request again", e.request(email), http.StatusAccepted, "")
	wantStatus(t, "the new code", e.verify(email, e.lastMail(email).Code), http.StatusOK, "")

	t.Run("STARTTLS mandatory against a server without it", func(t *testing.T) {
		e := newVerifyEnv(t, sink, func(c *node.Config) { c.SMTP.StartTLS = node.StartTLSMandatory })
		e.putUser(email)
		before := len(sink.Messages())
		wantStatus(t, "request", e.request(email), http.StatusBadGateway, "mail_failed")
		if len(sink.Messages()) != before {
			t.Error("a message went out in clear")
		}
	})
}

func TestVerify_NoSecretsInLogs(t *testing.T) {
	const password = "Sm7p-pa55word-never-logged"
	sink := node.NewSMTPSink(t, node.SinkAuth("relay", password))
	e := newVerifyEnv(t, sink)
	const email = "secret.keeper@b.example"
	e.putUser(email)
	var secrets []string
	step := func() node.ParsedMail {
		pm := e.lastMail(email)
		u, _ := url.Parse(pm.Link)
		secrets = append(secrets, pm.Code, u.Query().Get("c"))
		return pm
	}
	wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
	pm := step()
	e.verify(email, otherCode(pm.Code))
	wantStatus(t, "code", e.verify(email, pm.Code), http.StatusOK, "")
	e.clock.Add(time.Minute)
	wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
	pm = step()
	e.confirm(pm.Link)
	e.confirm(pm.Link)
	e.clock.Add(time.Minute)
	sink.Fail(errors.New("rejected for <" + email + ">"))
	wantStatus(t, "failed request", e.request(email), http.StatusBadGateway, "mail_failed")
	step()

	// A node with the wrong password: the refusal is logged, the password not.
	const wrong = "Wr0ng-pa55word-never-logged"
	e2 := newVerifyEnv(t, sink, func(c *node.Config) { c.SMTP.Password = wrong })
	e2.putUser(email)
	wantStatus(t, "wrong password", e2.request(email), http.StatusBadGateway, "mail_failed")

	logs := e.logs.String() + e2.logs.String()
	for _, want := range []string{"verification code sent", "verification mail not sent", "535"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q (is it captured?)", want)
		}
	}
	for _, s := range append(secrets, password, wrong, email) {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %q:\n%s", s, logs)
		}
	}
}

func TestVerify_Templates(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "verify.txt.tmpl"), []byte(`{{define "subject"}}Ihr Bestätigungscode{{end}}Guten Tag {{.Email}},
Code: {{.Code}}
Link: {{.Link}}
Gültig {{.Expires}} Minuten auf {{.Site}}.
`), 0o600)
	os.WriteFile(filepath.Join(dir, "verify.html.tmpl"), []byte(`<p>Code <b>{{.Code}}</b> für {{.Email}}: <a href="{{.Link}}">bestätigen</a></p>`), 0o600)
	sink := node.NewSMTPSink(t)
	e := newVerifyEnv(t, sink, func(c *node.Config) {
		c.Verification.Templates = dir
		c.Verification.CodeTTL = node.Duration(30 * time.Minute)
	})
	const email = "tpl@b.example"
	e.putUser(email)
	wantStatus(t, "request", e.request(email), http.StatusAccepted, "")
	pm := e.lastMail(email)
	if pm.Subject != "Ihr Bestätigungscode" {
		t.Errorf("Subject %q", pm.Subject)
	}
	want := fmt.Sprintf("Guten Tag %s,\nCode: %s\nLink: %s\nGültig 30 Minuten auf http://site-0.localhost/.\n", email, pm.Code, pm.Link)
	if strings.ReplaceAll(pm.Text, "\r\n", "\n") != want {
		t.Errorf("text part %q, want %q", pm.Text, want)
	}
	if !strings.Contains(pm.HTML, "<b>"+pm.Code+"</b> für "+email) || !strings.Contains(pm.HTML, `href="`+pm.Link+`"`) {
		t.Errorf("HTML part %q", pm.HTML)
	}
	wantStatus(t, "the code", e.verify(email, pm.Code), http.StatusOK, "")

	t.Run("a broken template stops the start", func(t *testing.T) {
		bad := t.TempDir()
		os.WriteFile(filepath.Join(bad, "verify.html.tmpl"), []byte(`{{.Nope}}`), 0o600)
		cfg := verifyConfig(t, sink, "verify-test-token-0123456789")
		cfg.Verification.Templates = bad
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		n, err := node.New(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close(context.Background())
		if err := n.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "verification.templates") {
			t.Errorf("Start = %v, want a verification.templates error", err)
		}
	})
}

func TestVerify_MailDisabled(t *testing.T) {
	e := newVerifyEnv(t, nil)
	e.putUser("ann@b.example")
	wantStatus(t, "request", e.request("ann@b.example"), http.StatusServiceUnavailable, "mail_disabled")
	wantStatus(t, "verify", e.verify("ann@b.example", "123456"), http.StatusBadRequest, "invalid_code")
	if err := e.n.SendVerification(context.Background(), "ann@b.example"); !errors.Is(err, node.ErrMailDisabled) {
		t.Errorf("SendVerification = %v", err)
	}
}

func TestNode_SendVerification(t *testing.T) {
	sink := node.NewSMTPSink(t)
	e := newVerifyEnv(t, sink)
	e.putUser("ann@b.example")
	ctx := context.Background()
	if err := e.n.SendVerification(ctx, " Ann@B.example "); err != nil {
		t.Fatal(err)
	}
	pm := e.lastMail("ann@b.example")
	if err := e.n.SendVerification(ctx, "ann@b.example"); !errors.Is(err, node.ErrRateLimited) {
		t.Errorf("a second send at once = %v, want rate_limited", err)
	}
	if err := e.n.SendVerification(ctx, "nope"); !errors.Is(err, session.ErrInvalidEmail) {
		t.Errorf("a bad address = %v", err)
	}
	if err := e.n.SendVerification(ctx, "nobody@b.example"); err != nil {
		t.Errorf("an unknown address = %v, want nil", err)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
	wantStatus(t, "the code", e.verify("ann@b.example", pm.Code), http.StatusOK, "")
}

func TestVerify_Cluster(t *testing.T) {
	sink := node.NewSMTPSink(t)
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) { cfg.SMTP = sink.SMTPSection() }
	c.Start(2)
	const email = "roamer@b.example"
	if code := c.Members[0].Call("PUT", "/v1/users/"+email, map[string]any{"login": "r"}, nil); code != http.StatusOK {
		t.Fatalf("PUT: %d", code)
	}
	c.WaitFor(5*time.Second, "the user on n1", func() bool {
		_, err := c.Members[1].Store().User(email)
		return err == nil
	})
	if code := c.Members[0].Call("POST", "/v1/users/"+email+"/verification", nil, nil); code != http.StatusAccepted {
		t.Fatalf("request: %d", code)
	}
	msgs := sink.Messages()
	pm := node.ParseMail(t, msgs[len(msgs)-1].Data)

	// The link is sealed for the site that sent it.
	wantStatus(t, "the link on another site", openOn(t, c.HTTP, c.Members[1].PublicAddr(), pm.Link), http.StatusForbidden, "ticket_wrong_target")
	// Codes live on the node that sent them.
	code, raw := c.Members[1].CallRaw("POST", "/v1/users/"+email+"/verify", map[string]string{"code": pm.Code})
	if code != http.StatusBadRequest || !strings.Contains(string(raw), "invalid_code") {
		t.Errorf("the code on another node: %d %s", code, raw)
	}
	if code := c.Members[0].Call("POST", "/v1/users/"+email+"/verify", map[string]string{"code": pm.Code}, nil); code != http.StatusOK {
		t.Fatalf("verify: %d", code)
	}
	c.WaitFor(5*time.Second, "n1 sees the user verified by code", func() bool {
		u, err := c.Members[1].Store().User(email)
		return err == nil && u.Verified.V.OK && u.Verified.V.Method == "code"
	})
	// The code proved the mailbox on n0: n0 is bound to the address, n1
	// is not (until a hand-off from n0, or a code of its own).
	var login struct {
		Synced bool   `json:"synced"`
		Reason string `json:"reason"`
	}
	if code := c.Members[0].Call("POST", "/v1/sessions", map[string]any{"email": email}, &login); code != http.StatusCreated || !login.Synced {
		t.Errorf("login on n0 after verifying on n0: %d synced=%v", code, login.Synced)
	}
	if code := c.Members[1].Call("POST", "/v1/sessions", map[string]any{"email": email}, &login); code != http.StatusCreated || login.Synced || login.Reason != "site_not_bound" {
		t.Errorf("login on n1 after verifying on n0: %d synced=%v reason %q", code, login.Synced, login.Reason)
	}
}
