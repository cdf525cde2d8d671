//go:build unix

package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/internal/testenv"
)

// The proxy tests run the examples of examples/nginx and examples/caddy as
// they are written, with only their names, ports and paths replaced (each
// replacement must match, so an edited example that the test no longer
// renders fails the test): Debian's nginx or Caddy in front of three real
// `ussync agent` processes and three small site backends, with TLS from a
// certificate chain the test makes (root → intermediate → site certificate;
// the clients trust the root only and verify the chain), driven by a real
// Chromium whose profile trusts that root.

// proxySites are the test's three sites; their host names are under
// .localhost, which Chromium resolves to loopback itself.
var proxySites = []string{"site-a", "site-b", "site-c"}

// proxyPKI is a certificate chain made for one test.
type proxyPKI struct {
	dir       string
	rootPEM   []byte
	pool      *x509.CertPool
	fullchain string // site certificate then intermediate, PEM
	key       string // the site certificate's key, PEM
}

// newProxyPKI makes a root CA, an intermediate CA and one server
// certificate for every name, signed by the intermediate.
func newProxyPKI(t *testing.T, names ...string) *proxyPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	sign := func(tmpl, parent *x509.Certificate, pub, priv any) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pemOf := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}

	rootKey, interKey, leafKey := newKey(), newKey(), newKey()
	ca := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	}
	root := sign(ca("ussync e2e root CA"), nil, &rootKey.PublicKey, rootKey)
	interTmpl := ca("ussync e2e intermediate CA")
	interTmpl.MaxPathLenZero = true
	inter := sign(interTmpl, root, &interKey.PublicKey, rootKey)
	leaf := sign(&x509.Certificate{Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		inter, &leafKey.PublicKey, interKey)
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}

	p := &proxyPKI{dir: dir, rootPEM: pemOf(root), pool: x509.NewCertPool(),
		fullchain: filepath.Join(dir, "fullchain.pem"), key: filepath.Join(dir, "privkey.pem")}
	p.pool.AddCert(root)
	write := func(path string, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.fullchain, append(pemOf(leaf), pemOf(inter)...))
	write(p.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	write(filepath.Join(dir, "root.pem"), p.rootPEM)
	return p
}

// chromiumHome returns a HOME directory whose NSS database
// (~/.pki/nssdb, where Chromium on Linux looks) trusts the test's root CA
// for TLS servers, and nothing else of this machine's user.
func (p *proxyPKI) chromiumHome(t *testing.T) string {
	t.Helper()
	certutil := testenv.Require(t, testenv.Certutil, "TLS through the proxy with a browser that verifies the chain")
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + db, "--empty-password"},
		{"-A", "-d", "sql:" + db, "-n", "ussync e2e root CA", "-t", "C,,", "-i", filepath.Join(p.dir, "root.pem")},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return home
}

// httpsClient verifies the proxy's chain against the test's root (no
// InsecureSkipVerify), reaches every *.localhost name at addr, and follows
// no redirect.
func (p *proxyPKI) httpsClient(addr string) *http.Client {
	dial := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dial.DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// render returns the example file at path (relative to the module root)
// with each old string replaced by its new one; every old string must occur.
func render(t *testing.T, path string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), path))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s no longer holds %q: the test renders the example by replacing it", path, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

// moduleRoot is the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller failed")
	}
	return filepath.Dir(filepath.Dir(file))
}

// siteApp is one site's backend, what a small non-WordPress site does with
// ussync: its login form logs the user in through its node's private API,
// sets the session cookie and sends the browser down the chain; every page
// checks the cookie with the node; /app/ is an application that only reads
// the headers the proxy's forward-auth gives it.
type siteApp struct {
	name  string // "site-a"
	url   string // https://site-a.localhost:PORT/
	api   string // the node's private API, http://127.0.0.1:port
	token string
	http  *http.Client
}

func (s *siteApp) call(method, path string, body any, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.api+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

// cookieName is the session cookie of the site: __Host-ussync_session on
// an https site at its root, as the node names the ones it sets
// (docs/handoff.md, "Cookies").
func (s *siteApp) cookieName() string { return client.CookieName(s.url) }

// user is the e-mail of the request's active session, or "".
func (s *siteApp) user(r *http.Request) (email, id string) {
	c, err := r.Cookie(s.cookieName())
	if err != nil || c.Value == "" {
		return "", ""
	}
	sum := sha256.Sum256([]byte(c.Value))
	id = hex.EncodeToString(sum[:])
	var ans struct {
		Session struct {
			Email string `json:"email"`
		} `json:"session"`
	}
	if code, err := s.call("GET", "/v1/sessions/"+id, nil, &ans); err != nil || code != http.StatusOK {
		return "", id
	}
	return ans.Session.Email, id
}

func (s *siteApp) page(w http.ResponseWriter, site, user, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, `<!doctype html><html><head><title>%s</title></head><body data-site="%s" data-user="%s">%s</body></html>`,
		html.EscapeString(site), html.EscapeString(site), html.EscapeString(user), body)
}

func (s *siteApp) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
}

func (s *siteApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/app/"):
		// Only the proxy's headers say who this is.
		s.page(w, s.name+"-app", r.Header.Get("X-Ussync-Email"), fmt.Sprintf(
			`<p>protected app</p><p id="headers">session=%s user-header=%s</p>`,
			html.EscapeString(r.Header.Get("X-Ussync-Session")), html.EscapeString(r.Header.Get("X-Ussync-User"))))
	case r.URL.Path == "/login" && r.Method == http.MethodPost:
		s.login(w, r)
	case r.URL.Path == "/logout" && r.Method == http.MethodPost:
		if _, id := s.user(r); id != "" {
			s.call("DELETE", "/v1/sessions/"+id, nil, nil)
		}
		s.setCookie(w, "", -1)
		http.Redirect(w, r, "/", http.StatusSeeOther)
	case r.URL.Path == "/" || r.URL.Path == "/login":
		email, _ := s.user(r)
		if email != "" {
			s.page(w, s.name, email, `<p>logged in</p><form method="post" action="/logout"><button id="logout">Log out</button></form>`)
			return
		}
		ret := r.URL.Query().Get("return")
		s.page(w, s.name, "", fmt.Sprintf(`<form method="post" action="/login"><input id="email" name="email">`+
			`<input type="hidden" name="return" value="%s"><button id="login">Log in</button></form>`, html.EscapeString(ret)))
	default:
		http.NotFound(w, r)
	}
}

// login registers the address (a test site trusts what is typed), logs it
// in and sends the browser down the chain, which ends at return (a path of
// this site) or the home page.
func (s *siteApp) login(w http.ResponseWriter, r *http.Request) {
	email := r.PostFormValue("email")
	ret := s.url
	if p := r.PostFormValue("return"); strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") {
		ret = strings.TrimSuffix(s.url, "/") + p
	}
	login := strings.Split(email, "@")[0]
	if code, err := s.call("PUT", "/v1/users/"+url.PathEscape(email),
		map[string]string{"login": login, "display_name": login, "verified_via": "registration"}, nil); err != nil || code != http.StatusOK {
		http.Error(w, fmt.Sprintf("register: %d %v", code, err), http.StatusBadGateway)
		return
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	if f := r.Header.Get("X-Forwarded-For"); f != "" {
		ip = f
	}
	var ans struct {
		Token   string `json:"token"`
		Session struct {
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"session"`
		Sync struct {
			Chain string `json:"chain"`
		} `json:"sync"`
	}
	code, err := s.call("POST", "/v1/sessions", map[string]string{"email": email, "ip": ip,
		"user_agent": r.UserAgent(), "return_to": ret}, &ans)
	if err != nil || code != http.StatusCreated {
		http.Error(w, fmt.Sprintf("log in: %d %v", code, err), http.StatusBadGateway)
		return
	}
	s.setCookie(w, ans.Token, int(time.Until(ans.Session.ExpiresAt).Seconds()))
	next := ret
	if ans.Sync.Chain != "" {
		next = ans.Sync.Chain
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// proxyKind is one reverse proxy under test.
type proxyKind struct {
	name    string
	program testenv.Program
	// start renders the example for the sites and runs the proxy on addr
	// (127.0.0.1:port, HTTPS) until the test ends. nodes[i] is site i's
	// node public listener, apps[i] its backend, both host:port.
	start func(t *testing.T, exe, dir, addr string, pki *proxyPKI, nodes, apps []string)
}

var nginxProxy = proxyKind{name: "nginx", program: testenv.Nginx, start: startNginx}
var caddyProxy = proxyKind{name: "caddy", program: testenv.Caddy, start: startCaddy}

func startNginx(t *testing.T, exe, dir, addr string, pki *proxyPKI, nodes, apps []string) {
	t.Helper()
	plain := freeAddr(t, false)
	var sites strings.Builder
	for i, name := range proxySites {
		sites.WriteString(render(t, "examples/nginx/ussync-site.conf",
			"site-a.example;", name+".localhost;",
			"    listen [::]:80;\n", "",
			"    listen [::]:443 ssl http2;\n", "",
			"listen 80;", "listen "+plain+";",
			"listen 443 ssl http2;", "listen "+addr+" ssl http2;",
			"/etc/ssl/site-a.example/fullchain.pem", pki.fullchain,
			"/etc/ssl/site-a.example/privkey.pem", pki.key,
			"127.0.0.1:7948", nodes[i],
			"127.0.0.1:8080", apps[i],
		))
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`# The test's main configuration; the sites are examples/nginx/ussync-site.conf.
daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
%[3]s
}
`, dir, tmp, sites.String())
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(exe, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n%s", err, out, conf)
	}
	runProxy(t, dir, exe, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path)
}

func startCaddy(t *testing.T, exe, dir, addr string, pki *proxyPKI, nodes, apps []string) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	var sites strings.Builder
	fmt.Fprintf(&sites, `# The test's global options; the sites are examples/caddy/Caddyfile.
{
	admin off
	auto_https disable_redirects
	skip_install_trust
	https_port %s
	storage file_system %s
	default_bind 127.0.0.1
}
`, port, filepath.Join(dir, "data"))
	for i, name := range proxySites {
		sites.WriteString(render(t, "examples/caddy/Caddyfile",
			"site-a.example {", "https://"+name+".localhost:"+port+" {",
			"/etc/ssl/site-a.example/fullchain.pem", pki.fullchain,
			"/etc/ssl/site-a.example/privkey.pem", pki.key,
			"127.0.0.1:7948", nodes[i],
			"127.0.0.1:8080", apps[i],
		))
	}
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(sites.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	runProxy(t, dir, exe, "run", "--adapter", "caddyfile", "--config", path)
}

// runProxy starts the proxy program, with HOME and XDG dirs in dir, stopped
// (and its log shown if the test failed) at cleanup.
func runProxy(t *testing.T, dir, exe string, args ...string) {
	t.Helper()
	var out logBuffer
	cmd := exec.Command(exe, args...)
	cmd.Env = cleanEnv("HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // nginx: fast shutdown; caddy: graceful stop
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("%s output:\n%s\n%s", filepath.Base(exe), out.String(), log)
		}
	})
}

func TestProxy_Nginx(t *testing.T) { testProxy(t, nginxProxy) }
func TestProxy_Caddy(t *testing.T) { testProxy(t, caddyProxy) }

// testProxy: behind the proxy, over TLS that Chromium verifies, a login on
// site A reaches B and C through the chain; the forward-auth protected
// application on C answers for the user and ignores the headers the browser
// forges; after a logout on B it refuses the browser.
func testProxy(t *testing.T, kind proxyKind) {
	if testing.Short() {
		t.Skip("end-to-end test: nodes, a reverse proxy and Chromium")
	}
	proxyExe := testenv.Require(t, kind.program, "the "+kind.name+" example in front of real nodes, with TLS and forward-auth")
	chromium := browserRequire(t)
	pki := newProxyPKI(t, "site-a.localhost", "site-b.localhost", "site-c.localhost")
	home := pki.chromiumHome(t)
	proxyAddr := freeAddr(t, false)
	_, proxyPort, _ := net.SplitHostPort(proxyAddr)
	siteURL := func(i int) string { return "https://" + proxySites[i] + ".localhost:" + proxyPort + "/" }

	// The nodes trust the proxy's X-Forwarded-* headers.
	conf := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(conf, []byte("public:\n  trusted_proxies: [127.0.0.1/32]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Each node checks its own site through the proxy (site.health_url's
	// default), over TLS: the agents trust the test's root CA as an
	// operator's machines trust a private one (SSL_CERT_FILE, read by Go's
	// TLS on Linux).
	t.Setenv("SSL_CERT_FILE", filepath.Join(pki.dir, "root.pem"))
	c := newClusterWith(t, len(proxySites), func(a *agent) {
		i := len(a.name) - 1 // n0, n1, n2
		a.siteURL = siteURL(int(a.name[i] - '0'))
		a.config = conf
	})

	var nodes, apps []string
	for i, a := range c.agents {
		app := &siteApp{name: proxySites[i], url: a.siteURL, api: "http://" + a.api, token: c.token, http: c.http}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		nodes, apps = append(nodes, a.public), append(apps, ln.Addr().String())
	}
	kind.start(t, proxyExe, t.TempDir(), proxyAddr, pki, nodes, apps)

	// Every node hands browsers to every other site only once that site
	// answers its health check through the proxy, which has just started.
	for _, a := range c.agents {
		api := client.New("http://"+a.api, c.token)
		c.eventually(startTimeout, a.name+" to hand browsers to every site", func() string {
			st, err := api.Status(context.Background())
			if err != nil {
				return err.Error()
			}
			for _, m := range st.Members {
				if m.Name != a.name && !m.Handoff {
					return m.Name + " is not handed browsers yet"
				}
			}
			if len(st.Members) != len(c.agents) {
				return fmt.Sprintf("%d members", len(st.Members))
			}
			return ""
		})
	}

	// The chain verifies for a Go client that trusts the root only, and the
	// proxy reaches the node: no session, 401.
	hc := pki.httpsClient(proxyAddr)
	t.Cleanup(hc.CloseIdleConnections)
	c.eventually(startTimeout, kind.name+" to answer /ussync/v1/whoami over TLS", func() string {
		resp, err := hc.Get(siteURL(0) + "ussync/v1/whoami")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "no_session") {
			return fmt.Sprintf("%d %s", resp.StatusCode, b)
		}
		if n := len(resp.TLS.VerifiedChains); n == 0 || len(resp.TLS.VerifiedChains[0]) != 3 {
			return fmt.Sprintf("verified chains: %v", resp.TLS.VerifiedChains)
		}
		return ""
	})
	// Without a session the protected app sends the browser to the login
	// page (the proxy's forward-auth got 401 from the node).
	resp, err := hc.Get(siteURL(2) + "app/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, err := resp.Location(); resp.StatusCode != http.StatusFound || err != nil || loc.String() != siteURL(2)+"login?return=/app/" {
		t.Fatalf("anonymous GET /app/: %d, Location %q; want 302 to %slogin?return=/app/", resp.StatusCode, resp.Header.Get("Location"), siteURL(2))
	}

	a, b, cc := siteURL(0), siteURL(1), siteURL(2)
	ada := browserLaunch(t, chromium, "ada's browser", false, chromedp.Env("HOME="+home))
	// Every request of this tab carries headers that claim another user.
	forged := network.Headers{"X-Ussync-User": "mallory@example.com", "X-Ussync-Email": "mallory@example.com", "X-Ussync-Session": "forged"}
	func() {
		ctx, cancel := context.WithTimeout(ada.Ctx, browserStepTimeout)
		defer cancel()
		if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: forged}); err != nil {
			t.Fatalf("set extra headers: %v", err)
		}
	}()
	rec := ada.record()

	t.Run("anonymous_app_sends_to_login", func(t *testing.T) {
		x := ada.in(t)
		x.open(cc + "app/")
		x.shows(cc+"login?return=/app/", "")
	})

	t.Run("login_reaches_every_site_through_the_proxy", func(t *testing.T) {
		x := ada.in(t)
		x.login(a, browserAda)
		for _, s := range []string{b, cc} {
			if got := rec.matching(s + "ussync/v1/sync?"); len(got) != 1 {
				t.Fatalf("the login chain visited %sussync/v1/sync %d times, want once: %q", s, len(got), rec.matching(""))
			}
		}
		x.visit(b, browserAda)
		x.visit(cc, browserAda)
		// The node set B's cookie through the proxy: https at the root, so
		// a Secure __Host- cookie.
		ck := x.cookie(b, "__Host-ussync_session")
		if ck == nil || !ck.Secure || !ck.HTTPOnly || ck.Path != "/" {
			t.Fatalf("B's session cookie: %+v", ck)
		}
	})

	t.Run("forward_auth_app_answers_for_the_user", func(t *testing.T) {
		x := ada.in(t)
		x.open(cc + "app/")
		p := x.shows(cc+"app/", browserAda)
		if strings.Contains(p.Text, "mallory") || strings.Contains(p.Text, "forged") ||
			!strings.Contains(p.Text, "user-header= ") && !strings.HasSuffix(p.Text, "user-header=") {
			t.Fatalf("the app saw forged headers: %q", p.Text)
		}
		i := strings.Index(p.Text, "session=")
		if i < 0 || len(p.Text) < i+8+64 {
			t.Fatalf("the app saw no session id: %q", p.Text)
		}
		if _, err := hex.DecodeString(p.Text[i+8 : i+8+64]); err != nil {
			t.Fatalf("the app's session id is not the node's: %q", p.Text)
		}
	})

	t.Run("logout_ends_it_everywhere_and_the_app_refuses", func(t *testing.T) {
		x := ada.in(t)
		x.visit(b, browserAda)
		x.submit("logout")
		x.shows(b, "")
		x.visit(a, "")
		x.eventually("the protected app to refuse the browser", func() string {
			x.open(cc + "app/")
			p, err := x.page()
			if err != nil {
				return err.Error()
			}
			if !strings.HasPrefix(p.Href, cc+"login?return=/app/") || p.User != "" {
				return "the page is " + p.String()
			}
			return ""
		})
	})
}

// TestProxy_NodeTLS: a node reached without a proxy serves its public
// endpoints over TLS itself (public.tls_cert, public.tls_key) with the
// whole chain, which a client trusting only the root verifies; a client
// trusting nothing else refuses it.
func TestProxy_NodeTLS(t *testing.T) {
	pki := newProxyPKI(t, "site-a.localhost")
	conf := filepath.Join(t.TempDir(), "cluster.yaml")
	yaml := fmt.Sprintf("public:\n  tls_cert: %s\n  tls_key: %s\n", pki.fullchain, pki.key)
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newClusterWith(t, 1, func(a *agent) {
		a.siteURL = "https://site-a.localhost/"
		a.config = conf
	})
	n0 := c.agents[0]

	hc := pki.httpsClient(n0.public)
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := hc.Get("https://site-a.localhost/ussync/v1/whoami")
	if err != nil {
		t.Fatalf("GET whoami over the node's TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("whoami: %d, want 401", resp.StatusCode)
	}
	chain := resp.TLS.VerifiedChains
	if len(chain) == 0 || len(chain[0]) != 3 || chain[0][2].Subject.CommonName != "ussync e2e root CA" {
		t.Fatalf("verified chains: %v; want site certificate, intermediate, root", chain)
	}

	// The system's roots do not know the test's CA: the same call fails.
	plain := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, n0.public)
		},
	}}
	t.Cleanup(plain.CloseIdleConnections)
	var unknown x509.UnknownAuthorityError
	if _, err := plain.Get("https://site-a.localhost/ussync/v1/whoami"); !errors.As(err, &unknown) {
		t.Fatalf("a client without the test's root: %v; want an unknown authority error", err)
	}
}
