package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
)

// The site check (docs/operations.md, "A site that does not answer"): the
// node requests site.health_url every site.health_interval (by default its
// own <site url>ussync/v1/healthz, through the site's web server and
// reverse proxy) and advertises in its gossip metadata whether the site
// answered (gossip's sitehealth.go). The other sites leave a member whose
// site is down, or whose reports stopped, out of the hand-offs they offer:
// a browser is never sent to a site that cannot bring it back.

// HealthOff is the SiteSection.HealthURL that turns the site's check off.
const HealthOff = "off"

// HealthCheckURL is the URL the site's health check requests ("" when the
// check is off). Call it on a validated Config.
func (s SiteSection) HealthCheckURL() string {
	switch s.HealthURL {
	case HealthOff:
		return ""
	case "":
		return s.URL + "ussync/v1/healthz"
	}
	return s.HealthURL
}

// siteCheckTimeout bounds one check of the site; siteCheckFailures
// checks in a row must fail before the site is reported down (one slow
// answer on a loaded machine is no outage: load balancers' "unhealthy
// threshold", AWS ELB's default is 2).
const (
	siteCheckTimeout  = 5 * time.Second
	siteCheckFailures = 2
)

// siteCheck checks this node's site. It is safe for concurrent use; a nil
// *siteCheck is a check that is off.
type siteCheck struct {
	url     string
	every   time.Duration
	timeout time.Duration
	client  *http.Client
	report  func(state string, every, timeout time.Duration) error
	log     *slog.Logger

	mu     sync.Mutex
	state  string // gossip.SiteUp, gossip.SiteDown, "" before the first check
	why    string // why it is down
	since  time.Time
	failed int // checks failed in a row
}

// newSiteCheck returns the check of url every period, reporting through
// report; nil when url is "" (the check is off).
func newSiteCheck(url string, every time.Duration, report func(string, time.Duration, time.Duration) error, log *slog.Logger) *siteCheck {
	if url == "" {
		return nil
	}
	timeout := siteCheckTimeout
	return &siteCheck{
		url: url, every: every, timeout: timeout, report: report, log: log,
		client: healthClient(timeout, 1, 2*every),
	}
}

// healthClient returns the HTTP client of a site's health URL, the site
// check's and the steps' probe's (step_probe.go): every call bounded by
// timeout, at most idle connections kept for idleFor, no cookie, no proxy
// of the environment (the site as a browser reaches it), names under
// .localhost dialled on the loopback, and redirects not followed.
func healthClient(timeout time.Duration, idle int, idleFor time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: nil,
			// Names under .localhost are the loopback (RFC 6761 §6.3), as
			// browsers resolve them; Go's resolver asks DNS.
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if host, port, err := net.SplitHostPort(addr); err == nil && isLocalhost(host) {
					addr = net.JoinHostPort("127.0.0.1", port)
				}
				return dialer.DialContext(ctx, network, addr)
			},
			TLSHandshakeTimeout:    timeout,
			ResponseHeaderTimeout:  timeout,
			MaxIdleConns:           idle,
			MaxIdleConnsPerHost:    min(idle, 2),
			MaxResponseHeaderBytes: 16 << 10,
			IdleConnTimeout:        idleFor,
		},
		// A redirect is the site's answer, not a place to go.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// healthStatusError is a health URL's answer that is not 2xx.
type healthStatusError struct {
	url, status string
}

func (e *healthStatusError) Error() string { return e.url + " answered " + e.status }

// getHealth requests a health URL once with hc, as agent: nil for a 2xx
// answer, a *healthStatusError for another answer, else the transport's
// error. At most 4 KiB of the body is read.
func getHealth(ctx context.Context, hc *http.Client, url, agent string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", agent)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return &healthStatusError{url: url, status: resp.Status}
	}
	return nil
}

func isLocalhost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// run checks the site at once, then every period, until ctx ends.
func (c *siteCheck) run(ctx context.Context) {
	if c == nil {
		return
	}
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		c.checkOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkOnce requests the health URL, records the answer, logs a change
// and reports the state.
func (c *siteCheck) checkOnce(ctx context.Context) {
	state, why := gossip.SiteUp, ""
	err := c.probe(ctx)
	if err != nil && ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	if err != nil {
		c.failed++
		state, why = gossip.SiteDown, err.Error()
		if c.failed < siteCheckFailures && c.state != "" {
			state, why = c.state, c.why // not yet: one more try
		}
	} else {
		c.failed = 0
	}
	was := c.state
	if was != state {
		c.since = time.Now()
	}
	c.state, c.why = state, why
	c.mu.Unlock()
	switch {
	case state == gossip.SiteDown && was != gossip.SiteDown:
		c.log.Warn("this site does not answer its health check: the other sites leave it out of their hand-offs until it does (site.health_url)",
			"url", c.url, "err", why)
	case state == gossip.SiteUp && was == gossip.SiteDown:
		c.log.Info("this site answers its health check again: the other sites hand browsers to it again", "url", c.url)
	}
	// The period advertised is the longest between two reports: a check
	// may take its whole timeout.
	if err := c.report(state, c.every+c.timeout, c.timeout); err != nil && ctx.Err() == nil {
		c.log.Debug("advertise the site's state", "err", err)
	}
}

// probe requests the health URL: nil for a 2xx answer.
func (c *siteCheck) probe(ctx context.Context) error {
	return getHealth(ctx, c.client, c.url, "ussync-site-check")
}

// down reports whether the last check failed, and why.
func (c *siteCheck) down() (bool, string, time.Time) {
	if c == nil {
		return false, "", time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == gossip.SiteDown, c.why, c.since
}

// addHealth reports a site that does not answer in h.
func (c *siteCheck) addHealth(h *client.GossipHealth) {
	down, why, since := c.down()
	if !down {
		return
	}
	h.SiteDown, h.SiteCheck = true, why
	if h.Status == "ok" || h.Status == "catching_up" {
		h.Status = "site_down"
	}
	msg := fmt.Sprintf("this site does not answer its health check since %s (%s): the other sites leave it out of their hand-offs", since.UTC().Format(time.RFC3339), why)
	if h.Reason != "" {
		msg = h.Reason + "; " + msg
	}
	h.Reason = msg
}

// memberSiteState is how status shows a member's site: "up", "down", "stale"
// (up, but its reports stopped), or "" (it reports nothing).
func memberSiteState(m gossip.Member) string {
	if m.Site == gossip.SiteUp && !m.SiteFresh {
		return "stale"
	}
	return m.Site
}
