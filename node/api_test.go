package node

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

const testAPIToken = "test-api-token-0123456789abcdef"

// publishLog records what the API hands to gossip.
type publishLog struct {
	mu    sync.Mutex
	calls [][]session.Record
}

func (p *publishLog) publish(recs []session.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, recs)
}

// take returns the records published since the last take, flattened.
func (p *publishLog) take() []session.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []session.Record
	for _, c := range p.calls {
		out = append(out, c...)
	}
	p.calls = nil
	return out
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// apiEnv is one private API over a real store, served on loopback.
type apiEnv struct {
	t       testing.TB
	srv     *httptest.Server
	store   *session.Store
	clock   *session.ManualClock
	pub     *publishLog
	logs    *syncBuffer
	metrics *Metrics
}

// testWiring is what a test may change before its env starts: the
// service's config, the API's dependencies, and wire, which may add
// dependencies built over the service (the hand-off).
type testWiring struct {
	svc  serviceConfig
	api  apiDeps
	wire func(svc *service, d *apiDeps)
}

func newAPIEnv(t testing.TB, mod ...func(*testWiring)) *apiEnv {
	t.Helper()
	e := &apiEnv{
		t:       t,
		clock:   session.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		pub:     &publishLog{},
		logs:    &syncBuffer{},
		metrics: NewMetrics(),
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := session.Open(session.Options{Dir: t.TempDir(), Now: e.clock.Now, Logger: log})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e.store = st
	w := testWiring{
		svc: serviceConfig{
			Store:           st,
			Name:            "site-a",
			TTL:             720 * time.Hour,
			RequireVerified: true,
			Publish:         e.pub.publish,
			Log:             log,
			Metrics:         e.metrics,
		},
		api: apiDeps{
			Token:   crypto.HashToken(testAPIToken),
			Log:     log,
			Metrics: e.metrics,
		},
	}
	for _, m := range mod {
		m(&w)
	}
	w.api.Service = newService(w.svc)
	if w.wire != nil {
		w.wire(w.api.Service, &w.api)
	}
	e.srv = httptest.NewServer(newAPI(w.api))
	t.Cleanup(func() {
		e.srv.Close()
		st.Close()
		if t.Failed() {
			t.Logf("node log:\n%s", e.logs.String())
		}
	})
	return e
}

type apiResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends a request with the API token. body is sent as is when it is a
// string, JSON-encoded otherwise (nil: no body); a body gets Content-Type
// application/json unless hdr says otherwise.
func (e *apiEnv) do(method, path string, body any, hdr ...string) *apiResponse {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+testAPIToken)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// want checks the status and decodes the body into v (if not nil).
func (r *apiResponse) want(t testing.TB, status int, v any) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if v != nil {
		if err := json.Unmarshal(r.Body, v); err != nil {
			t.Fatalf("decode %s: %v", r.Body, err)
		}
	}
}

type errorAnswer struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Session *sessionJSON `json:"session"`
}

// wantError checks an error answer's status and code and returns it.
func (r *apiResponse) wantError(t testing.TB, status int, code string) errorAnswer {
	t.Helper()
	var ea errorAnswer
	r.want(t, status, &ea)
	if ea.Error.Code != code || ea.Error.Message == "" {
		t.Fatalf("error %q (%q), want code %q; body %s", ea.Error.Code, ea.Error.Message, code, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	return ea
}

func TestAPI_Auth(t *testing.T) {
	e := newAPIEnv(t)
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"wrong token", "Bearer not-the-token", http.StatusUnauthorized},
		{"token prefix", "Bearer " + testAPIToken[:10], http.StatusUnauthorized},
		{"basic scheme", "Basic " + testAPIToken, http.StatusUnauthorized},
		{"bare token", testAPIToken, http.StatusUnauthorized},
		{"right token", "Bearer " + testAPIToken, http.StatusOK},
		{"scheme in lower case", "bearer " + testAPIToken, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", "/v1/status", nil, "Authorization", tc.auth)
			if tc.status == http.StatusOK {
				r.want(t, http.StatusOK, nil)
				return
			}
			r.wantError(t, http.StatusUnauthorized, client.CodeUnauthorized)
			if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
				t.Errorf("WWW-Authenticate %q, want Bearer", h)
			}
		})
	}
	t.Run("every v1 call", func(t *testing.T) {
		for _, c := range [][2]string{
			{"PUT", "/v1/users/a@example.com"},
			{"GET", "/v1/users/a@example.com"},
			{"POST", "/v1/users/a@example.com/logout-everywhere"},
			{"GET", "/v1/users/a@example.com/sessions"},
			{"POST", "/v1/sessions"},
			{"GET", "/v1/sessions/" + strings.Repeat("a", 64)},
			{"DELETE", "/v1/sessions/" + strings.Repeat("a", 64)},
		} {
			e.do(c[0], c[1], `{}`, "Authorization", "").wantError(t, http.StatusUnauthorized, client.CodeUnauthorized)
		}
		if _, err := e.store.User("a@example.com"); err == nil {
			t.Error("an unauthorized PUT created the user")
		}
	})
	t.Run("healthz and metrics need none", func(t *testing.T) {
		var h struct{ Status string }
		e.do("GET", "/healthz", nil, "Authorization", "").want(t, http.StatusOK, &h)
		if h.Status != "ok" {
			t.Errorf("healthz %+v", h)
		}
		e.do("GET", "/metrics", nil, "Authorization", "").want(t, http.StatusOK, nil)
	})
}

// TestAPI_HealthzDigest: GET /healthz shows the fingerprint of the
// store's digest, which follows every write.
func TestAPI_HealthzDigest(t *testing.T) {
	e := newAPIEnv(t)
	digest := func() string {
		var h healthzBody
		e.do("GET", "/healthz", nil, "Authorization", "").want(t, http.StatusOK, &h)
		d := e.store.Digest()
		if h.Digest != d.Fingerprint() {
			t.Errorf("healthz digest %q, the store's %q", h.Digest, d.Fingerprint())
		}
		return h.Digest
	}
	empty := digest()
	e.do("PUT", "/v1/users/a@example.com", `{"login":"x"}`).want(t, http.StatusOK, nil)
	if after := digest(); after == empty || len(after) != 16 {
		t.Errorf("digest %q before a write, %q after: want a new 16-character fingerprint", empty, after)
	}
}

func TestAPI_Decoding(t *testing.T) {
	e := newAPIEnv(t)
	for _, tc := range []struct {
		name   string
		body   string
		hdr    []string
		status int
		code   string
		msg    string // the message must contain it
	}{
		{"malformed", `{"login": "x",}`, nil, 400, client.CodeInvalidJSON, "invalid JSON"},
		{"truncated", `{"login": "x"`, nil, 400, client.CodeInvalidJSON, "truncated"},
		{"unknown field", `{"login":"x","password":"hunter2"}`, nil, 400, client.CodeUnknownField, `"password"`},
		{"trailing garbage", `{"login":"x"} garbage`, nil, 400, client.CodeInvalidJSON, "after the JSON object"},
		{"two objects", `{"login":"x"}{"login":"y"}`, nil, 400, client.CodeInvalidJSON, "after the JSON object"},
		{"array", `[{"login":"x"}]`, nil, 400, client.CodeInvalidJSON, "JSON object"},
		{"null", `null`, nil, 400, client.CodeInvalidJSON, "JSON object"},
		{"empty", ``, nil, 400, client.CodeInvalidJSON, "empty"},
		{"wrong type", `{"login": 42}`, nil, 400, client.CodeInvalidField, `"login"`},
		{"too large", `{"login":"` + strings.Repeat("x", maxBodyBytes) + `"}`, nil, 413, client.CodeBodyTooLarge, "larger"},
		{"text/plain", `{"login":"x"}`, []string{"Content-Type", "text/plain"}, 415, client.CodeUnsupportedMedia, "text/plain"},
		{"no content type", `{"login":"x"}`, []string{"Content-Type", ""}, 415, client.CodeUnsupportedMedia, "Content-Type"},
		{"form", `login=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, client.CodeUnsupportedMedia, "form"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ea := e.do("PUT", "/v1/users/a@example.com", tc.body, tc.hdr...).wantError(t, tc.status, tc.code)
			if !strings.Contains(ea.Error.Message, tc.msg) {
				t.Errorf("message %q does not mention %q", ea.Error.Message, tc.msg)
			}
		})
	}
	if _, err := e.store.User("a@example.com"); err == nil {
		t.Error("a refused PUT created the user")
	}
	t.Run("charset parameter", func(t *testing.T) {
		e.do("PUT", "/v1/users/a@example.com", `{"login":"x"}`, "Content-Type", "application/json; charset=utf-8").want(t, http.StatusOK, nil)
	})
	t.Run("body limit on an optional body", func(t *testing.T) {
		e.do("POST", "/v1/users/a@example.com/logout-everywhere", `{"x":"`+strings.Repeat("y", maxBodyBytes)+`"}`).
			wantError(t, http.StatusRequestEntityTooLarge, client.CodeBodyTooLarge)
	})
}

func TestAPI_Routing(t *testing.T) {
	e := newAPIEnv(t)
	t.Run("unknown route", func(t *testing.T) {
		for _, p := range []string{"/", "/v1/nothing", "/v2/status", "/v1/sessions/", "/v1/users/a@example.com/devices"} {
			r := e.do("GET", p, nil)
			r.wantError(t, http.StatusNotFound, client.CodeNotFound)
			if strings.Contains(string(r.Body), "404 page not found") {
				t.Errorf("GET %s: the router's text leaked: %s", p, r.Body)
			}
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		for _, c := range []struct{ method, path, allow string }{
			{"POST", "/v1/status", "GET, HEAD"},
			{"PATCH", "/v1/sessions/" + strings.Repeat("a", 64), "DELETE, GET, HEAD"},
			{"DELETE", "/v1/users/a@example.com", "GET, HEAD, PUT"},
		} {
			r := e.do(c.method, c.path, nil)
			r.wantError(t, http.StatusMethodNotAllowed, client.CodeMethodNotAllowed)
			if got := r.Header.Get("Allow"); got != c.allow {
				t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
			}
		}
	})
	t.Run("common headers", func(t *testing.T) {
		for _, r := range []*apiResponse{
			e.do("GET", "/v1/status", nil),
			e.do("GET", "/v1/nothing", nil),
			e.do("GET", "/v1/status", nil, "Authorization", ""),
			e.do("GET", "/healthz", nil),
		} {
			for h, v := range map[string]string{
				"Content-Type":           "application/json",
				"Cache-Control":          "no-store",
				"X-Content-Type-Options": "nosniff",
			} {
				if got := r.Header.Get(h); got != v {
					t.Errorf("%s: %q, want %q (status %d)", h, got, v, r.Status)
				}
			}
		}
	})
}

func TestAPI_Status(t *testing.T) {
	t.Run("from the node", func(t *testing.T) {
		e := newAPIEnv(t, func(w *testWiring) {
			w.api.Status = func() client.Status {
				return client.Status{Node: "site-a", Version: "v9", Members: []client.MemberStatus{{Name: "site-b"}}}
			}
		})
		var st client.Status
		e.do("GET", "/v1/status", nil).want(t, http.StatusOK, &st)
		if st.Node != "site-a" || st.Version != "v9" || len(st.Members) != 1 {
			t.Errorf("status %+v", st)
		}
	})
	t.Run("without a status func", func(t *testing.T) {
		e := newAPIEnv(t)
		e.do("PUT", "/v1/users/a@example.com", `{}`).want(t, http.StatusOK, nil)
		var st client.Status
		e.do("GET", "/v1/status", nil).want(t, http.StatusOK, &st)
		if st.Node != "site-a" || st.Counts.Users != 1 {
			t.Errorf("status %+v", st)
		}
	})
}

func TestAPI_Panic(t *testing.T) {
	e := newAPIEnv(t, func(w *testWiring) {
		w.api.Status = func() client.Status { panic("status exploded") }
	})
	ea := e.do("GET", "/v1/status", nil).wantError(t, http.StatusInternalServerError, client.CodeInternal)
	if strings.Contains(ea.Error.Message, "exploded") {
		t.Errorf("the panic leaked into the answer: %q", ea.Error.Message)
	}
	if !strings.Contains(e.logs.String(), "status exploded") {
		t.Errorf("the panic was not logged:\n%s", e.logs)
	}
	// The server lives on.
	e.do("GET", "/healthz", nil).want(t, http.StatusOK, nil)
}

func TestAPI_Metrics(t *testing.T) {
	e := newAPIEnv(t)
	e.metrics.RegisterFunc("ussync_test_gauge", "A gauge the node adds.", func() float64 { return 42 })
	e.metrics.RegisterCounterFunc("ussync_test_things_total", "A counter the node adds.", func() float64 { return 7 })
	s := e.login(t, "a@example.com", true)
	e.do("GET", "/v1/sessions/"+s.Session.ID, nil).want(t, http.StatusOK, nil)
	e.do("GET", "/v1/sessions/"+strings.Repeat("0", 64), nil).wantError(t, http.StatusNotFound, client.CodeNotFound)
	e.do("DELETE", "/v1/sessions/"+s.Session.ID, nil).want(t, http.StatusOK, nil)
	e.do("GET", "/v1/nothing/here", nil).wantError(t, http.StatusNotFound, client.CodeNotFound)

	r := e.do("GET", "/metrics", nil)
	r.want(t, http.StatusOK, nil)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want Prometheus text", ct)
	}
	text := string(r.Body)
	for _, want := range []string{
		`ussync_api_requests_total{code="200",route="GET /v1/sessions/{id}"} 1`,
		`ussync_api_requests_total{code="404",route="GET /v1/sessions/{id}"} 1`,
		`ussync_api_requests_total{code="201",route="POST /v1/sessions"} 1`,
		`ussync_api_requests_total{code="404",route="unmatched"} 1`,
		`ussync_api_request_duration_seconds_bucket{route="GET /v1/sessions/{id}",le="+Inf"} 2`,
		`ussync_sessions_created_total{synced="true"} 1`,
		`ussync_sessions_created_total{synced="false"} 0`,
		`ussync_sessions_ended_total{reason="logout"} 1`,
		`ussync_sessions_ended_total{reason="logout_everywhere"} 0`,
		`ussync_test_gauge 42`,
		"# TYPE ussync_test_things_total counter\nussync_test_things_total 7",
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "a@example.com") {
		t.Error("/metrics holds an e-mail")
	}
	t.Run("one registry per node", func(t *testing.T) {
		other := newAPIEnv(t)
		text := string(other.do("GET", "/metrics", nil).Body)
		if strings.Contains(text, `route="POST /v1/sessions"} 1`) || strings.Contains(text, "ussync_test_gauge") {
			t.Error("a second node sees the first node's metrics")
		}
	})
}

// BenchmarkAPI_SessionCheck measures GET /v1/sessions/{id}, the call every
// page view of every site makes, over a real loopback HTTP server.
func BenchmarkAPI_SessionCheck(b *testing.B) {
	e := newAPIEnv(b)
	s := e.login(b, "bench@example.com", true)
	tr := &http.Transport{MaxIdleConnsPerHost: 1024}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := e.srv.URL + "/v1/sessions/" + s.Session.ID
	auth := "Bearer " + testAPIToken
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkAPI_SessionCheckHandler is the same call without the network: the
// API's own cost (store reads, JSON, metrics).
func BenchmarkAPI_SessionCheckHandler(b *testing.B) {
	e := newAPIEnv(b)
	s := e.login(b, "bench@example.com", true)
	h := e.srv.Config.Handler
	req := httptest.NewRequest("GET", "/v1/sessions/"+s.Session.ID, nil)
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

func TestSessionView_JSON(t *testing.T) {
	t.Run("view", func(t *testing.T) {
		created := time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)
		ended := created.Add(time.Minute)
		v := client.SessionInfo{
			ID: strings.Repeat("ab", 32), Email: "a@example.com", Site: "site-a", IP: "192.0.2.1", UserAgent: `Mozilla "5.0" <x>`,
			CreatedAt: created, ExpiresAt: created.Add(time.Hour), EndedAt: &ended,
			EndReason: session.EndLogout, Synced: true,
		}
		enc, err := json.Marshal(struct {
			S client.SessionInfo `json:"session"`
		}{v})
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Session sessionJSON }
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("decode %s: %v", enc, err)
		}
		s := got.Session
		if s.ID != v.ID || s.Email != v.Email || s.Site != v.Site || s.IP != v.IP || s.UserAgent != v.UserAgent ||
			!s.CreatedAt.Equal(v.CreatedAt) || !s.ExpiresAt.Equal(v.ExpiresAt) || s.EndedAt == nil || !s.EndedAt.Equal(*v.EndedAt) ||
			s.EndReason != v.EndReason || s.Active || !s.Synced {
			t.Errorf("round trip %+v, from %s", s, enc)
		}
		if !bytes.Contains(enc, []byte(`"created_at":"2026-03-01T12:00:00.123Z"`)) {
			t.Errorf("times are not RFC 3339 UTC: %s", enc)
		}
		v.EndedAt, v.EndReason, v.Active = nil, "", true
		if enc, _ := json.Marshal(v); !bytes.Contains(enc, []byte(`"ended_at":null,"end_reason":"","active":true`)) {
			t.Errorf("active view %s", enc)
		}
	})
}
