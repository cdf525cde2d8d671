package node

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	// FreshSince, when set, is when this node started on an empty data dir
	// (session.Store.Fresh): its replay cache is gone, so a session ticket
	// issued before then, which it may have redeemed before it lost its
	// data, is refused. (Clocks within the max offset: a node restarted
	// within that offset of a redemption could miss a replay; a ticket is
	// bound to one browser as well.)
	FreshSince time.Time
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
	h.issued.WithLabelValues("session")
	h.redeemed.WithLabelValues("ok")
	cfg.Metrics.Registry.MustRegister(h.issued, h.redeemed)
	return h, nil
}

func (h *handoff) now() time.Time { return h.Service.now() }
