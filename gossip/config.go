package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ussync/ussync/session"
)

// Profile names a timer set of memberlist's own defaults. It is the one
// profile type of ussync: node's config (node.profile) is checked against
// these names and translated into it.
type Profile string

// Profiles.
const (
	ProfileLAN   Profile = "lan"   // one data centre: memberlist.DefaultLANConfig
	ProfileWAN   Profile = "wan"   // sites across the internet: memberlist.DefaultWANConfig
	ProfileLocal Profile = "local" // one machine (tests): memberlist.DefaultLocalConfig
)

// Config configures one gossip member. Zero durations take the profile's
// value.
type Config struct {
	// Name is the node's unique name in the cluster.
	Name string
	// BindAddr is the host:port memberlist listens on (UDP and TCP). Port 0
	// picks a free one (tests).
	BindAddr string
	// AdvertiseAddr is the host:port other members reach this node at, when
	// it differs from BindAddr (NAT, 0.0.0.0 bind).
	AdvertiseAddr string
	// Profile is lan, wan (sites spread over the internet: the default) or
	// local (one machine).
	Profile Profile
	// Keys are the AES-256 gossip keys, primary first. Required: gossip is
	// never unencrypted.
	Keys [][]byte
	// SiteURL and Version are advertised in node metadata, so that the
	// member list is the list of sites.
	SiteURL string
	Version string
	// Handoff is the version of the browser hand-off protocol this node's
	// site speaks, advertised in node metadata ("ho") like Version, so that
	// other members can leave a site that would not understand their
	// hand-off out of it (Member.Handoff). Zero advertises none: what a
	// member of a version before the field looks like.
	Handoff int
	// Join lists host:port addresses to join at start and to retry while
	// this node is alone.
	Join []string

	// memberlist timers (see memberlist.Config).
	ProbeInterval       time.Duration
	ProbeTimeout        time.Duration
	GossipInterval      time.Duration
	PushPullInterval    time.Duration
	GossipToTheDeadTime time.Duration
	TCPTimeout          time.Duration
	SuspicionMult       int

	// ReconnectInterval is the first delay before re-joining a failed member
	// (or trying a join address no live member answers at); it doubles per
	// failure up to ReconnectMaxBackoff, and each wait is drawn from
	// [backoff/2, backoff] so that nodes cut off together do not retry
	// together. The cap bounds how long a healed partition stays split.
	ReconnectInterval   time.Duration
	ReconnectMaxBackoff time.Duration
	// ReconnectTimeout is how long a failed member is retried before it is
	// forgotten (Serf: 24 h); also how long a member remembered from the
	// last run is tried.
	ReconnectTimeout time.Duration
	// TombstoneTimeout is how long a member that left (a clean stop, as
	// `systemctl stop` makes) stays listed "left" before it is forgotten
	// (Serf's TombstoneTimeout, 24 h; reaped by the reconnect loop, at
	// most a second late, where Serf's ReapInterval is 15 s). Meanwhile
	// Members lists it, and a keyring operation names it as not done
	// there: it comes back with the keys it had when it stopped.
	TombstoneTimeout time.Duration
	// MaxQueueDepth caps the broadcast queue; older broadcasts are pruned.
	MaxQueueDepth int

	// ResyncInterval is the first delay before a round owed to a member
	// (back from failure, at a new address, to catch up, or after a failed
	// round) is tried again; it doubles up to ResyncMaxBackoff, jittered
	// like reconnects. The first try is at once.
	ResyncInterval   time.Duration
	ResyncMaxBackoff time.Duration
	// RoundTimeout is how long an anti-entropy round may go without
	// progress (a repair chunk applied) before it is given up and tried
	// again: it covers a peer that must read many buckets before its first
	// chunk, and a chunk lost without an error. Zero: twice TCPTimeout, at
	// least 10 s.
	RoundTimeout time.Duration

	// MaxInboundStreams caps the concurrent inbound streams from addresses
	// this member knows (members, failed members, join addresses);
	// MaxStrangerStreams those from any other address. A stream past the
	// cap is closed at once (and counted). Zero takes the default: 256 and
	// 16.
	MaxInboundStreams  int
	MaxStrangerStreams int

	// PacketCopies is how many times each eager-push packet is sent to a
	// peer, at once: a lost UDP packet then costs nothing unless every copy
	// is lost (at 1 % independent loss, two copies leave 1 in 10,000
	// changes to wait for a second try: a push is sent again until it is
	// acknowledged, see peer). The receiver applies the first copy and
	// drops the others unread. Zero takes the profile's: 2 under wan (the
	// internet loses packets), 1 under lan and local.
	PacketCopies int
	// NoEagerPush turns the eager push off: changes then travel by
	// memberlist's gossip (and rebroadcast) alone, as Serf's user events
	// do. For benchmarks that show what the push buys; never in production.
	NoEagerPush bool
	// noAcks plays a member of an older version, which neither asks for
	// nor sends acknowledgements of pushes, and drops kindPush and kindAck
	// as unknown kinds, counted bad (tests).
	noAcks bool
	// LeafPullMin, when set, is how many records a bucket must hold (by
	// this member's count) to be pulled by its leaves, instead of 64
	// (tests: the buckets of a small store pulled by their leaves, as a
	// store of 16,000 records and more pulls them). Zero in production.
	LeafPullMin int
	// leafPullMax, when set, replaces maxLeafPullBytes (tests: a leaf
	// whose pairs do not fit in one kindLeafPull message).
	leafPullMax int

	// Faults, when set, injects network faults (tests and benchmarks: see
	// Faults). Nil in production.
	Faults *Faults
	// Observer, when set, is called with the records a peer's message
	// changed (benchmarks time propagation with it), from the apply loop
	// (pushes and gossip) and the repair loop (anti-entropy's repairs),
	// which may call it at the same time. It must not block.
	Observer func(changed []session.Record)
	// QueryHandler answers the queries other members (and this one) ask
	// (Query). Nil: this member answers each with an error.
	QueryHandler QueryHandler
	// Logger receives the node's and memberlist's logs.
	Logger *slog.Logger
}

// DefaultConfig returns the settings of a profile; the caller fills in Name,
// BindAddr, Keys and the rest.
func DefaultConfig(profile Profile) Config {
	c := Config{
		Profile:          profile,
		BindAddr:         "0.0.0.0:7946",
		ReconnectTimeout: 24 * time.Hour,
		TombstoneTimeout: 24 * time.Hour,
		// A login is a few hundred bytes; 4096 queued covers a burst of
		// logins at one site without letting the queue grow without bound
		// (anti-entropy repairs what pruning drops).
		MaxQueueDepth: 4096,
	}
	// Reconnects back off to at most 20 s, whatever the profile and the
	// partition's length, so that a split heals within ~20 s of the network
	// coming back (Serf retries every 30 s). A try is one TCP push/pull of
	// a few KB: cheap at that rate.
	// Rounds owed are retried faster (a member that is back is reachable):
	// from ResyncInterval, to at most 10 s.
	switch profile {
	case ProfileLAN:
		c.ReconnectInterval, c.ReconnectMaxBackoff = 2*time.Second, 20*time.Second
		c.ResyncInterval, c.ResyncMaxBackoff = 500*time.Millisecond, 10*time.Second
	case ProfileLocal:
		c.ReconnectInterval, c.ReconnectMaxBackoff = time.Second, 10*time.Second
		c.ResyncInterval, c.ResyncMaxBackoff = 200*time.Millisecond, 5*time.Second
	default: // wan: first tries later, a round trip costs more
		c.ReconnectInterval, c.ReconnectMaxBackoff = 5*time.Second, 20*time.Second
		c.ResyncInterval, c.ResyncMaxBackoff = time.Second, 10*time.Second
	}
	if profile == ProfileWAN || profile == "" {
		c.PacketCopies = 2
	} else {
		c.PacketCopies = 1
	}
	// Members may hold a stream each to this one at once (eager push,
	// anti-entropy, push/pull): 256 leaves room for large clusters. Strangers
	// (joins of new members, and anyone else) get 16: each may cost up to
	// ~1 MiB until it proves it holds the key.
	c.MaxInboundStreams, c.MaxStrangerStreams = 256, 16
	return c
}

// Shrink sets timers for in-process clusters on loopback (tests and
// benchmarks): a dead member is noticed within about a second, push/pull
// runs every 300 ms and reconnects start after 100 ms.
//
// SuspicionMult is 3, not lower: memberlist waits for SuspicionMult-2
// other members to confirm a suspicion before it cuts the suspicion's
// timeout from its maximum (6 × 300 ms) towards its minimum (300 ms), and
// with 2 it expects no confirmation and declares a suspect dead after the
// minimum (then 200 ms). On a loaded machine one member that did not get
// the CPU to hear an ack in time then killed a live member on its own
// (Lifeguard's "Suspicion" part, off): clusters of 5 flapped and never
// held full membership for 10 s. With 3, a member killed in a cluster of
// three or more is confirmed dead by the others in about the minimum, a
// false suspicion has 1.8 s to be refuted, and in a cluster of two (no one
// to confirm) the minimum applies.
func (c *Config) Shrink() {
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 300 * time.Millisecond
	c.GossipToTheDeadTime = 500 * time.Millisecond
	c.SuspicionMult = 3
	c.TCPTimeout = 2 * time.Second
	c.ReconnectInterval = 100 * time.Millisecond
	c.ReconnectMaxBackoff = 400 * time.Millisecond
	c.ResyncInterval = 100 * time.Millisecond
	c.ResyncMaxBackoff = time.Second
}

// fill sets the zero fields that have a default (New calls it).
func (c *Config) fill(mc *memberlist.Config) {
	d := DefaultConfig(c.Profile)
	setZero(&c.ReconnectInterval, d.ReconnectInterval)
	setZero(&c.ReconnectMaxBackoff, d.ReconnectMaxBackoff)
	setZero(&c.ReconnectTimeout, d.ReconnectTimeout)
	setZero(&c.TombstoneTimeout, d.TombstoneTimeout)
	setZero(&c.ResyncInterval, d.ResyncInterval)
	setZero(&c.ResyncMaxBackoff, d.ResyncMaxBackoff)
	if c.RoundTimeout <= 0 {
		c.RoundTimeout = max(10*time.Second, 2*mc.TCPTimeout)
	}
	if c.PacketCopies <= 0 {
		c.PacketCopies = d.PacketCopies
	}
	if c.MaxInboundStreams <= 0 {
		c.MaxInboundStreams = d.MaxInboundStreams
	}
	if c.MaxStrangerStreams <= 0 {
		c.MaxStrangerStreams = d.MaxStrangerStreams
	}
}

// setZero sets *dst to v when *dst is zero.
func setZero(dst *time.Duration, v time.Duration) {
	if *dst <= 0 {
		*dst = v
	}
}

// memberlistConfig translates c into memberlist's config.
func (c *Config) memberlistConfig() (*memberlist.Config, error) {
	var mc *memberlist.Config
	switch c.Profile {
	case ProfileLAN:
		mc = memberlist.DefaultLANConfig()
	case ProfileWAN, "":
		mc = memberlist.DefaultWANConfig()
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
	default:
		return nil, fmt.Errorf("profile %q: want lan, wan or local", c.Profile)
	}
	if c.Name == "" {
		return nil, errors.New("name is empty")
	}
	if len(c.Keys) == 0 {
		return nil, errors.New("no gossip key: gossip is never unencrypted")
	}
	mc.Name = c.Name
	host, port, err := splitHostPort(c.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("bind address: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = "", port
	if c.AdvertiseAddr != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(c.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("advertise address: %w", err)
		}
	}
	kr, err := memberlist.NewKeyring(c.Keys, c.Keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	mc.Keyring = kr
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.DNSConfigPath = "" // names resolve through the system resolver
	// memberlist compresses each packet with LZW and a fresh table: a
	// quarter of the CPU of a 30-node propagation, for records of a few
	// hundred bytes and digests that do not compress. Bytes are cheap here;
	// the time to log everyone out is not.
	mc.EnableCompression = false
	setIf(&mc.ProbeInterval, c.ProbeInterval)
	setIf(&mc.ProbeTimeout, c.ProbeTimeout)
	setIf(&mc.GossipInterval, c.GossipInterval)
	setIf(&mc.PushPullInterval, c.PushPullInterval)
	setIf(&mc.GossipToTheDeadTime, c.GossipToTheDeadTime)
	setIf(&mc.TCPTimeout, c.TCPTimeout)
	if c.SuspicionMult > 0 {
		mc.SuspicionMult = c.SuspicionMult
	}
	return mc, nil
}

func setIf(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", s)
	}
	return host, port, nil
}
