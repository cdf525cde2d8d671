//go:build unix

package wordpress

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestWordPress_TLSProxy: a site behind a TLS-terminating reverse proxy
// (a Go one here, as nginx or a CDN would be), with FORCE_SSL_ADMIN. PHP
// sees plain http from the proxy; with the proxy listed in the plugin's
// trusted proxies, WordPress knows the request was https and the admin
// has no redirect loop. Without it, the loop is there (the test can fail).
func TestWordPress_TLSProxy(t *testing.T) {
	tb := theBed(t)
	// Site D: a copy of A's files with its own database, served over http
	// by PHP on one port and over https by the proxy on another.
	dport, err := freePort(false)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pport := ln.Addr().(*net.TCPAddr).Port
	d := &site{name: "site-d", port: dport, db: "wp_site_d", dir: filepath.Join(tb.dir, "site-d"),
		url: fmt.Sprintf("https://site-d.localhost:%d/", pport)}
	if err := tb.sql("CREATE DATABASE IF NOT EXISTS wp_site_d"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.dir); err != nil {
		if err := copyTree(tb.sites[0].dir, d.dir); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(d.dir, "debug.log"), nil, 0o666)
	os.WriteFile(filepath.Join(d.dir, "php-errors.log"), nil, 0o666)
	cfg := strings.Replace(tb.wpConfig(d), "define('WP_HOME'", "define('FORCE_SSL_ADMIN', true);\ndefine('WP_HOME'", 1)
	if err := os.WriteFile(filepath.Join(d.dir, "wp-config.php"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tb.serve(d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.php.stop)
	backend, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", dport))
	proxy := httptest.NewUnstartedServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(backend)
		pr.Out.Host = pr.In.Host
		pr.SetXForwarded() // X-Forwarded-For, -Host, -Proto: https
	}})
	proxy.Listener.Close()
	proxy.Listener = ln
	proxy.StartTLS()
	t.Cleanup(proxy.Close)

	c := httpClient()
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	form := url.Values{"weblog_title": {"D"}, "user_name": {"admin"}, "admin_password": {adminPass}, "admin_password2": {adminPass},
		"pw_weak": {"1"}, "admin_email": {"admin-site-d@example.com"}, "blog_public": {"0"}}
	resp, err := c.PostForm(d.url+"wp-admin/install.php?step=2", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tb.mustPHP(t, d, fmt.Sprintf(`switch_theme('e2e'); activate_plugin('ussync/ussync.php');
update_option('ussync_settings', array('connections' => array(array('id'=>'main','label'=>'','api_url'=>'http://%s','public_url'=>'http://%s','token_file'=>'')), 'trusted_proxies' => '127.0.0.1/32'));
return 1;`, tb.sites[0].api, tb.sites[0].public))

	x := launchWith(t, "the administrator's browser", false, chromedp.Flag("ignore-certificate-errors", true))
	x.wpLogin(d, "admin", adminPass, false)
	x.open(d.url + "wp-admin/")
	x.eventually("the dashboard over https", func() string {
		p, err := x.page()
		if err != nil {
			return err.Error()
		}
		if !strings.HasPrefix(p.Href, d.url+"wp-admin/") || !strings.Contains(p.Text, "Dashboard") {
			return "the page is " + p.String()
		}
		return ""
	})

	// Without the trusted proxy, WordPress thinks the request is http and
	// FORCE_SSL_ADMIN sends it to https for ever.
	tb.mustPHP(t, d, `$s = get_option('ussync_settings'); $s['trusted_proxies'] = ''; update_option('ussync_settings', $s); return 1;`)
	ctx, cancel := context.WithTimeout(x.Ctx, stepTimeout)
	defer cancel()
	err = chromedp.Do(ctx, chromedp.Navigate(d.url+"wp-admin/"))
	if err == nil || !strings.Contains(err.Error(), "TOO_MANY_REDIRECTS") {
		t.Fatalf("without the trusted proxy the admin answered without a redirect loop (%v): the test proves nothing", err)
	}
}
