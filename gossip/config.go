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

	// ReconnectInterval is the first delay before re-joining a failed member;
	// it doubles per failure up to ReconnectMaxBackoff.
	ReconnectInterval   time.Duration
	ReconnectMaxBackoff time.Duration
	// ReconnectTimeout is how long a failed member is retried before it is
	// forgotten (Serf: 24 h).
	ReconnectTimeout time.Duration
	// MaxQueueDepth caps the broadcast queue; older broadcasts are pruned.
	MaxQueueDepth int

	// Faults, when set, lets tests cut links (partitions). Nil in production.
	Faults *Faults
	// Observer, when set, is called from the apply loop with the records a
	// peer's message changed (benchmarks time propagation with it). It must
	// not block.
	Observer func(changed []session.Record)
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
		// A login is a few hundred bytes; 4096 queued covers a burst of
		// logins at one site without letting the queue grow without bound
		// (anti-entropy repairs what pruning drops).
		MaxQueueDepth: 4096,
	}
	switch profile {
	case ProfileLAN:
		c.ReconnectInterval, c.ReconnectMaxBackoff = 5*time.Second, 2*time.Minute
	case ProfileLocal:
		c.ReconnectInterval, c.ReconnectMaxBackoff = time.Second, 10*time.Second
	default: // wan: peers across the internet come back slowly
		c.ReconnectInterval, c.ReconnectMaxBackoff = 10*time.Second, 5*time.Minute
	}
	return c
}

// Shrink sets timers for in-process clusters on loopback (tests and
// benchmarks): a dead member is noticed in well under a second, push/pull
// runs every 300 ms and reconnects start after 100 ms.
func (c *Config) Shrink() {
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 300 * time.Millisecond
	c.GossipToTheDeadTime = 500 * time.Millisecond
	c.SuspicionMult = 2
	c.TCPTimeout = 2 * time.Second
	c.ReconnectInterval = 100 * time.Millisecond
	c.ReconnectMaxBackoff = 400 * time.Millisecond
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
