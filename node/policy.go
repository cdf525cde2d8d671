package node

import (
	"slices"
	"time"
)

// The site's policies that a configuration reload (SIGHUP) changes while
// the node runs: session.ttl and sync.require_verified in the service,
// site.on_unknown_user and the hand-off's sync.* in the hand-off. Each is
// read through an atomic pointer, so a reload never races a request, and a
// request sees one whole policy, old or new.

// servicePolicy is what the service applies to logins.
type servicePolicy struct {
	TTL             time.Duration // session.ttl
	RequireVerified bool          // sync.require_verified
}

// policy returns the service's current policy.
func (s *service) policy() *servicePolicy { return s.pol.Load() }

// setPolicy replaces the service's policy (a reload).
func (s *service) setPolicy(p servicePolicy) { s.pol.Store(&p) }

// handoffPolicy is what the hand-off applies to tickets and browsers.
type handoffPolicy struct {
	TicketTTL     time.Duration // sync.ticket_ttl
	BindIP        bool          // sync.bind_ip
	HopInterval   time.Duration // sync.hop_interval
	Modes         []string      // sync.modes; nil offers chain and iframe
	OnUnknownUser string        // site.on_unknown_user
}

// policy returns the hand-off's current policy.
func (h *handoff) policy() *handoffPolicy { return h.pol.Load() }

// setPolicy replaces the hand-off's policy (a reload).
func (h *handoff) setPolicy(p handoffPolicy) {
	p.Modes = slices.Clone(p.Modes)
	if p.TicketTTL <= 0 {
		p.TicketTTL = time.Minute
	}
	if p.HopInterval <= 0 {
		p.HopInterval = 10 * time.Minute
	}
	h.pol.Store(&p)
}
