package node

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/gossip"
)

// The browser hand-off (docs/handoff.md): the machinery shared by the
// private API (login links, POST /v1/tickets/redeem) and the public
// listener. The member sites and the redirects it accepts are in sites.go,
// the tickets it seals and opens in tickets.go, their redemption in
// redeem.go.

// Hand-off limits.
const (
	// maxRedirectBytes is the longest next/return/return_to URL accepted.
	maxRedirectBytes = 2048
	// sitesTTL is how long the parsed member list is reused: every public
	// request reads it (forward-auth, on every page view), and membership
	// changes take seconds to be noticed anyway.
	sitesTTL = time.Second
	// ticketKindHop marks a lazy-mode hop request (see ticketPayload).
	ticketKindHop = "hop"
	// ticketKindBind marks the bind state of a chain's first pass.
	ticketKindBind = "bind"
	// ticketKindSession is the metric label of session tickets (their
	// payload has no kind).
	ticketKindSession = "session"
)

// Paths of the public endpoints, under <site path>.
const (
	publicPrefix = "ussync/v1/"
	pathSync     = publicPrefix + "sync"
	pathHopAsk   = publicPrefix + "hop/ask"
	pathHopDone  = publicPrefix + "hop/done"
)

// handoffConfig is what the ticket machinery needs; the node wires it.
type handoffConfig struct {
	// Keyring seals and opens tickets.
	Keyring *crypto.Keyring
	// Service performs the operations: the records a ticket carries are
	// accepted through it; its store keeps the replay cache and its clock
	// every expiry.
	Service *service
	// Name is this node's name: the Target of the tickets it accepts.
	Name string
	// SiteURL is this site's URL (site.url, validated).
	SiteURL string
	// TicketTTL is a ticket's lifetime (sync.ticket_ttl).
	TicketTTL time.Duration
	// MaxOffset is the cluster's max clock offset
	// (cluster.max_clock_offset): a ticket issued further in the future,
	// or living longer than TicketTTL plus it, is refused. Zero:
	// crypto.MaxClockSkew.
	MaxOffset time.Duration
	// BindIP binds the tickets this node seals to the client IP
	// (sync.bind_ip). Tickets bound by another node are checked whatever it
	// is.
	BindIP bool
	// HopInterval is the lifetime of the ussync_checked cookie
	// (sync.hop_interval).
	HopInterval time.Duration
	// Members lists the live members, this node included (gossip's
	// LiveMembers): the member list is the list of sites. Nil: this site
	// alone.
	Members func() []gossip.Member
	// Log receives refusals and failures, never a token or a ticket. Nil
	// discards.
	Log *slog.Logger
	// Metrics receives the hand-off counters. Nil makes a private set.
	Metrics *Metrics
	// Modes are the hand-off modes this site offers (sync.modes): a login
	// answer holds a chain only with "chain", sync URLs only with "iframe",
	// and neither with "lazy" alone. Nil offers chain and iframe both.
	Modes []string
	// OnUnknownUser is site.on_unknown_user: redeeming a ticket for a user
	// this site does not know creates it ("create", the default when empty)
	// or is refused ("reject"). See User.KnownTo.
	OnUnknownUser string
	// TicketGuard, when set, refuses a session ticket by its issue time
	// before it is used up: a node started on an empty data dir refuses
	// the tickets that may predate its replay cache (freshstore.go).
	TicketGuard func(issued time.Time) error
}

// handoff is the browser hand-off shared by the private API (login links,
// POST /v1/tickets/redeem) and the public listener. It is safe for
// concurrent use.
type handoff struct {
	handoffConfig
	self  site
	cache atomic.Pointer[siteList] // the last sites(), for sitesTTL
	// pol holds the policies of handoffConfig as a reload leaves them
	// (policy.go): read them there, not in handoffConfig.
	pol atomic.Pointer[handoffPolicy]

	issued   *prometheus.CounterVec // ussync_tickets_issued_total{kind}
	redeemed *prometheus.CounterVec // ussync_tickets_redeemed_total{result}
	skipped  *prometheus.CounterVec // ussync_handoff_sites_skipped_total{reason}
	// unavailable counts the logins offered no hand-off though other sites
	// were there (ussync_handoff_unavailable_total{reason}).
	unavailable *prometheus.CounterVec
	// legs counts the legs sealed that do not end their hand-off
	// (ussync_handoff_legs_total): chains split to fit in a URL.
	legs prometheus.Counter
	// prober probes the next site before a step sends a browser's
	// navigation there (step_probe.go).
	prober *siteProber
}

// newHandoff checks cfg and registers the hand-off metrics.
func newHandoff(cfg handoffConfig) (*handoff, error) {
	if cfg.Keyring == nil || cfg.Service == nil {
		return nil, errors.New("hand-off: keyring and service are required")
	}
	if cfg.TicketTTL <= 0 {
		cfg.TicketTTL = time.Minute
	}
	if cfg.MaxOffset <= 0 {
		cfg.MaxOffset = crypto.MaxClockSkew
	}
	if cfg.HopInterval <= 0 {
		cfg.HopInterval = 10 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	self, ok := parseSite(cfg.Name, cfg.SiteURL)
	if !ok {
		return nil, fmt.Errorf("hand-off: site url %q is not an absolute http(s) URL ending in /", cfg.SiteURL)
	}
	h := &handoff{handoffConfig: cfg, self: self}
	h.setPolicy(handoffPolicy{TicketTTL: cfg.TicketTTL, BindIP: cfg.BindIP, HopInterval: cfg.HopInterval, Modes: cfg.Modes, OnUnknownUser: cfg.OnUnknownUser})
	h.issued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ussync_tickets_issued_total",
		Help: `Hand-off tickets sealed by this node, by kind ("session" for a browser's session, "hop" for a lazy-mode request, "bind" for the first pass of a chain).`,
	}, []string{"kind"})
	h.redeemed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ussync_tickets_redeemed_total",
		Help: `Tickets presented to this node, by result: "ok" or the refusal's error code.`,
	}, []string{"result"})
	h.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ussync_handoff_sites_skipped_total",
		Help: `Member sites a hand-off (a login's links, a chain's or lazy mode's next hop) left out, by reason: "site_down" (its node reports its site does not answer), "site_stale" (its node's reports stopped), "older_version" (its node speaks an older hand-off, during a rolling upgrade), "not_live" (no longer a live member).`,
	}, []string{"reason"})
	h.unavailable = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ussync_handoff_unavailable_total",
		Help: `Logins that were offered no hand-off though other sites are members (the login answer's sync.error), by its code.`,
	}, []string{"reason"})
	h.legs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ussync_handoff_legs_total",
		Help: `Chain legs sealed that do not end their hand-off: a chain through every site would not fit in a URL, so the browser comes back to the origin after this leg and goes on with the next (docs/handoff.md, "Legs").`,
	})
	probes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ussync_handoff_probes_total",
		Help: `Requests this node made to the next site's health URL before a step sent a browser's navigation there (docs/handoff.md, "A site that dies mid-hand-off"), by result: "up" (2xx: the step is a 303), "down" (another status), "unreachable" (refused, no such host, TLS refused), "timeout"; the last three answer the step page. An answer reused within a second is not counted again.`,
	}, []string{"result"})
	h.prober = newSiteProber(nodeProbeTimeout, nodeProbeTTL, probes)
	for _, r := range []string{probedUp, probedDown, probedUnreachable, probedTimeout} {
		probes.WithLabelValues(r)
	}
	h.issued.WithLabelValues("session")
	h.redeemed.WithLabelValues("ok")
	for _, r := range []string{skipSiteDown, skipSiteStale, skipOlderVersion} {
		h.skipped.WithLabelValues(r)
	}
	for _, r := range []string{client.SyncTooLarge, client.SyncFailed} {
		h.unavailable.WithLabelValues(r)
	}
	cfg.Metrics.Registry.MustRegister(h.issued, h.redeemed, h.skipped, h.unavailable, h.legs, probes)
	return h, nil
}

// close drops the connections the hand-off keeps open (the prober's).
func (h *handoff) close() { h.prober.close() }

func (h *handoff) now() time.Time { return h.Service.now() }
