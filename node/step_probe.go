package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The node's own probe of the next site (docs/handoff.md, "A site that
// dies mid-hand-off"): before a step answers a browser's navigation with
// a step page, the node requests the next site's health URL itself; a
// site that answers 2xx gets the plain 303, and only one that does not
// gets the page, whose script lets the browser decide among the rest. The
// page costs the browser a document, a script and a fetch per step (a
// few hundred ms under load, measured on the WordPress chain); the
// node's probe costs one small request over a kept-alive connection, and
// a burst of logins shares it.

// Bounds of the node's probe. nodeProbeTimeout is short: a site that takes
// longer to answer its health URL is not one to send a browser to without
// the page (the page then probes it again, with its own, longer timeout).
// nodeProbeTTL is how long an answer is reused: at most the shortest
// site.health_interval (1s), so a negative answer is never kept longer
// than a site check's period, and a site that dies is 303'd to for at most
// that long after its last answer.
const (
	nodeProbeTimeout = time.Second
	nodeProbeTTL     = time.Second
)

// Results of a node's probe (ussync_handoff_probes_total's result).
const (
	probedUp          = "up"          // the site answered 2xx
	probedDown        = "down"        // it answered, not 2xx (a proxy's 502 for a dead node, a redirect)
	probedUnreachable = "unreachable" // no answer: refused, no such host, TLS refused
	probedTimeout     = "timeout"     // no answer within nodeProbeTimeout
)

// siteProber probes the member sites' health URLs for the steps, one
// request at a time per site, and keeps each answer nodeProbeTTL. It is
// safe for concurrent use.
type siteProber struct {
	client  *http.Client
	timeout time.Duration
	ttl     time.Duration
	probes  *prometheus.CounterVec // ussync_handoff_probes_total{result}

	mu   sync.Mutex
	last map[string]*siteProbe // by health URL
}

// siteProbe is one probe of a health URL: done is closed once ok and at
// are set.
type siteProbe struct {
	done chan struct{}
	ok   bool
	at   time.Time
}

// newSiteProber returns a prober whose requests take at most timeout and
// whose answers are reused for ttl, counting its probes into probes.
func newSiteProber(timeout, ttl time.Duration, probes *prometheus.CounterVec) *siteProber {
	return &siteProber{
		timeout: timeout, ttl: ttl, probes: probes,
		last:   map[string]*siteProbe{},
		client: healthClient(timeout, 32, 30*time.Second),
	}
}

// answers reports whether site s answers its health URL (<site
// url>ussync/v1/healthz, built here from the member's site URL and never
// from a request) with a 2xx: by the answer of a probe that ended less
// than ttl ago, else by the probe in flight, else by a new one. A caller
// whose ctx ends first gets false. It blocks for at most the timeout.
func (p *siteProber) answers(ctx context.Context, s site) bool {
	u := s.URL.String() + pathProbe
	now := time.Now()
	p.mu.Lock()
	e := p.last[u]
	if e != nil {
		select {
		case <-e.done:
			if age := now.Sub(e.at); age >= p.ttl || age < 0 {
				e = nil
			}
		default: // in flight: wait for it
		}
	}
	mine := e == nil
	if mine {
		e = &siteProbe{done: make(chan struct{})}
		p.pruneLocked(now)
		p.last[u] = e
	}
	p.mu.Unlock()
	if mine {
		// Not cut short by this browser going away: the others waiting
		// for the answer need it too.
		e.ok = p.probe(context.WithoutCancel(ctx), u)
		e.at = time.Now()
		close(e.done)
		return e.ok
	}
	select {
	case <-e.done:
		return e.ok
	case <-ctx.Done():
		return false
	}
}

// pruneLocked forgets the answers older than ttl, so that sites which
// left the cluster (or changed URL) are not kept forever.
func (p *siteProber) pruneLocked(now time.Time) {
	for u, e := range p.last {
		select {
		case <-e.done:
			if age := now.Sub(e.at); age >= p.ttl || age < 0 {
				delete(p.last, u)
			}
		default:
		}
	}
}

// probe requests u once and counts the result: true for a 2xx.
func (p *siteProber) probe(ctx context.Context, u string) bool {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	err := getHealth(ctx, p.client, u, "ussync-step-probe")
	result := probedUp
	var status *healthStatusError
	var ne net.Error
	switch {
	case err == nil:
	case errors.As(err, &status):
		result = probedDown
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		result = probedTimeout
	default:
		result = probedUnreachable
	}
	p.probes.WithLabelValues(result).Inc()
	return err == nil
}

// close drops the prober's idle connections.
func (p *siteProber) close() {
	p.client.CloseIdleConnections()
}

// stepPageNeeded reports whether res, a step's answer to a browser's
// navigation, must be the step page (needsStepPage) rather than its 303:
// only when the node's own probe of the first place it goes finds that
// site not answering (siteProber.answers), or no longer a member site.
// It blocks for at most nodeProbeTimeout, or until ctx ends.
func (h *handoff) stepPageNeeded(ctx context.Context, res *stepResult) bool {
	if !needsStepPage(res) {
		return false
	}
	s, ok := siteNamed(h.sites(), res.Onward[0].site)
	if !ok || s.Name == h.Name {
		return true
	}
	return !h.prober.answers(ctx, s)
}
