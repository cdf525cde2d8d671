package node

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/session"
)

// Answers to a session for an email this site has no account for.
// See SiteSection.OnUnknownUser.
const (
	UnknownUserCreate = "create"
	UnknownUserReject = "reject"
)

var (
	// ErrNoSecret is returned by Config.Secrets when no cluster secret is
	// configured anywhere.
	ErrNoSecret = errors.New("no cluster secret: set gossip.secret_file, USSYNC_SECRET or --secret-file (generate one with `ussync keygen`)")
	// ErrNoAPIToken is returned by Config.APIToken when no private API token is
	// configured anywhere.
	ErrNoAPIToken = errors.New("no API token: set api.token_file or USSYNC_API_TOKEN (generate one with `ussync keygen`); the site's backend sends it as \"Authorization: Bearer <token>\"")
)

// minTokenLen is the shortest API token accepted: a token is a password to
// every user's sessions, so a short or typed-in one is refused.
const minTokenLen = 16

// Config is one node's configuration: the format of cluster.yaml. Build it with
// DefaultConfig (or DevConfig), overlay a file with LoadConfig/ReadConfig, apply
// the environment (ApplyEnv) and the command line, then call Validate before
// handing it to New.
//
// A Config holds secrets (gossip.secrets, api.token, smtp.password): String and LogValue
// redact them, and no error built from a Config contains one.
type Config struct {
	// Node is who this node is and where it keeps its data.
	Node NodeSection `yaml:"node"`
	// Cluster holds the limits every node of the cluster must agree on.
	Cluster ClusterSection `yaml:"cluster"`
	// Site is the website this node sits beside.
	Site SiteSection `yaml:"site"`
	// Gossip is the cluster membership and dissemination listener.
	Gossip GossipSection `yaml:"gossip"`
	// API is the private HTTP API used by the site's backend.
	API APISection `yaml:"api"`
	// Public is the HTTP listener the browsers reach.
	Public PublicSection `yaml:"public"`
	// Session holds session lifetimes and the store's sweeping.
	Session SessionSection `yaml:"session"`
	// Sync is how sessions are handed to the other sites through the browser.
	Sync SyncSection `yaml:"sync"`
	// SMTP is the mail server that sends verification codes.
	SMTP SMTPSection `yaml:"smtp"`
	// Verification is e-mail verification by code and one-click link.
	Verification VerificationSection `yaml:"verification"`
	// Log is the node's logging.
	Log LogSection `yaml:"log"`
	// Admin is the administrator web page on the private listener.
	Admin AdminSection `yaml:"admin"`

	// Dev marks a throw-away development node (`ussync agent --dev`): site.url
	// may be left empty and is then derived from public.listen. Set by the CLI,
	// never read from the file.
	Dev bool `yaml:"-"`
	// Version is the software version the node advertises to its peers and in
	// its status. Set by the CLI from its build version, never read from the file.
	Version string `yaml:"-"`
	// UnrevokeSelf takes this node's own site's revocation back when it
	// starts (`ussync agent --unrevoke-self`): the way out for an
	// administrator with a shell on this machine when no node that is not
	// revoked is left to run `ussync sites unrevoke` (a compromised token
	// revoked every other site). Set by the CLI, never read from the file:
	// the API token cannot reach it.
	UnrevokeSelf bool `yaml:"-"`
}

// NodeSection is the `node:` section.
type NodeSection struct {
	// Name is the node's unique name in the cluster; it is also the session
	// origin recorded in the store. Letters, digits, '.', '_' and '-', at most
	// 64 characters. Two live nodes must never share a name.
	Name string `yaml:"name"`
	// DataDir is the directory of the node's store (created if missing).
	// A relative path is relative to the working directory.
	DataDir string `yaml:"data_dir"`
	// Profile is the gossip timing preset (gossip.Profile): "lan" (one data
	// centre), "wan" (sites across the internet) or "local" (one machine,
	// tests).
	Profile string `yaml:"profile"`
	// StrictPermissions refuses to start when a file holding a secret
	// (gossip.secret_file, api.token_file, admin.password_file,
	// smtp.password_file, public.tls_key) is open to other users: any
	// permission for others or for its group, but a file root owns may be
	// readable by its group (0640, as PostgreSQL allows for its key). Off,
	// the node starts and logs a warning for each such file. Either way the
	// data dir is made 0700 and its files 0600 (docs/operations.md).
	StrictPermissions bool `yaml:"strict_permissions"`
}

// ClusterSection is the `cluster:` section: limits every node of the
// cluster checks records and tickets against, so every node must use the
// same values (docs/security.md, "Records and clocks").
type ClusterSection struct {
	// MaxClockOffset is the largest offset between two nodes' wall clocks
	// the cluster tolerates: a record or a ticket stamped further ahead of
	// this node's clock is refused (counted, logged), a ticket may live
	// this much longer than sync.ticket_ttl, and a member whose clock is
	// further off is reported (status, log, metric). Run NTP on every node;
	// never raise it to hide a wrong clock (docs/security.md, "Records and
	// clocks").
	MaxClockOffset Duration `yaml:"max_clock_offset"`
}

// SiteSection is the `site:` section.
type SiteSection struct {
	// URL is the site's public base URL, absolute http(s) ending in "/"
	// (Validate adds a missing slash). The public endpoints are reached under
	// <url>ussync/, cookies are scoped to its path, and it is advertised to every
	// other node. Required, except for a dev node.
	URL string `yaml:"url"`
	// OnUnknownUser is what this site does when a session arrives for an email
	// it has no account for: "create" the local user from the gossiped record,
	// or "reject" the hand-off (the user must register on this site first).
	OnUnknownUser string `yaml:"on_unknown_user" ussync:"live"`
	// HealthURL is what the node requests every HealthInterval to check
	// that its site answers; the other sites skip one that does not in
	// their hand-offs. Empty: <url>ussync/v1/healthz through the site's web
	// server and proxy (a stopped server, or a proxy that does not forward
	// <url>ussync/ as is, fails it). HealthOff: no check, taken as up.
	HealthURL string `yaml:"health_url"`
	// HealthInterval is the check's period (1s to 5m); reports stopped for three is down too.
	HealthInterval Duration `yaml:"health_interval"`
}

// GossipSection is the `gossip:` section.
type GossipSection struct {
	// Bind is the IP:port the gossip listener (TCP and UDP) binds to.
	Bind string `yaml:"bind"`
	// Advertise is the IP:port other nodes are told to reach this node at,
	// when it differs from Bind (NAT, 0.0.0.0 binding). Empty: memberlist
	// picks the address of Bind, or a private address when Bind is 0.0.0.0.
	Advertise string `yaml:"advertise"`
	// Join lists host:port addresses of other nodes to join at start and to keep
	// re-joining after a partition. One live member is enough; list several.
	Join []string `yaml:"join"`
	// SecretFile is a file holding the cluster secrets, base64, one per line;
	// the first is the primary (used to send), the others are only accepted
	// (key rotation). Keep it readable by the ussync user only.
	SecretFile string `yaml:"secret_file" ussync:"live,alt=secrets"`
	// Secrets are the cluster secrets inline, base64, primary first. Allowed but
	// discouraged: a secret in a config file ends up in backups and version
	// control; prefer SecretFile or the USSYNC_SECRET environment variable.
	// At most one of Secrets and SecretFile may be set.
	Secrets []string `yaml:"secrets" ussync:"secret,live,alt=secret_file"`
}

// APISection is the `api:` section.
type APISection struct {
	// Listen is the host:port of the private API, or unix:/path for a Unix
	// socket (mode 0660, the node's user and group: apisocket.go). Keep it
	// on loopback or a private network: it answers for every user's
	// sessions.
	Listen string `yaml:"listen"`
	// Token is the bearer token the site's backend must send. Allowed but
	// discouraged for the same reason as gossip.secrets; prefer TokenFile or
	// USSYNC_API_TOKEN. At most one of Token and TokenFile may be set.
	Token string `yaml:"token" ussync:"secret,live,alt=token_file"`
	// TokenFile is a file holding the API token (surrounding whitespace ignored).
	TokenFile string `yaml:"token_file" ussync:"live,alt=token"`
	// AllowedHosts are host names, besides the built-in ones, that a
	// request to the private listener may carry in its Host header. Built
	// in: localhost and *.localhost, every IP address, and the host of
	// Listen. Any other name is refused (421) so that a web page cannot
	// reach the listener through DNS rebinding; list here the names the
	// site's backend or a scraper uses to reach it (e.g. "ussync.internal").
	AllowedHosts []string `yaml:"allowed_hosts"`
	// ReadTimeout bounds reading one request, its body included: a client
	// that sends slower is cut off.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds one request from the end of its headers to the
	// end of its answer, handling included (a verification request waits
	// for the mail server).
	WriteTimeout Duration `yaml:"write_timeout"`
	// MaxConnections caps the connections the listener holds open at once;
	// a connection over the cap is answered 503 and closed.
	MaxConnections int `yaml:"max_connections"`
}

// PublicSection is the `public:` section.
type PublicSection struct {
	// Listen is the host:port of the public endpoints (ticket redemption,
	// whoami, forward-auth, e-mail verification), usually behind the site's
	// reverse proxy at <site url>ussync/.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are PEM files: when both are set the public listener
	// serves HTTPS itself. Both or neither.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TrustedProxies are the CIDR prefixes of reverse proxies whose
	// X-Forwarded-For / X-Forwarded-Proto headers are believed. Requests from
	// other addresses are taken at their socket address. Empty: trust none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ReadTimeout, WriteTimeout and MaxConnections are as in the api
	// section, for the public listener. Over the cap, a plain-HTTP
	// connection is answered 503 and a TLS one is closed.
	ReadTimeout    Duration `yaml:"read_timeout"`
	WriteTimeout   Duration `yaml:"write_timeout"`
	MaxConnections int      `yaml:"max_connections"`
}

// TrustedPrefixes returns TrustedProxies parsed and masked. Entries that do not
// parse are skipped: call it on a validated Config.
func (p PublicSection) TrustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range p.TrustedProxies {
		if pfx, err := netip.ParsePrefix(s); err == nil {
			out = append(out, pfx.Masked())
		}
	}
	return out
}

// SessionSection is the `session:` section.
type SessionSection struct {
	// TTL is the lifetime of a new session when the login does not give one.
	TTL Duration `yaml:"ttl" ussync:"live"`
	// MaxTTL is the cluster's longest session: a login may not ask for a
	// longer ttl, and a session record (from a peer, or inside a ticket)
	// that lives longer than MaxTTL plus cluster.max_clock_offset is
	// refused. Every node must use the same value.
	MaxTTL Duration `yaml:"max_ttl"`
	// HistoryRetention is how long sessions are kept after they expire,
	// logged out or not (for "where am I logged in" history and late
	// gossip) before they are swept.
	HistoryRetention Duration `yaml:"history_retention"`
	// SweepInterval is how often the store removes records past retention.
	SweepInterval Duration `yaml:"sweep_interval"`
}

// SyncSection is the `sync:` section.
type SyncSection struct {
	// RequireVerified keeps the sessions of users whose email is not verified on
	// their own site: without it, anyone who registers someone else's address on
	// one site is logged in as them everywhere.
	RequireVerified bool `yaml:"require_verified" ussync:"live"`
	// BindIP binds each ticket to the client IP that asked for it: a ticket
	// redeemed from another address is refused. Off by default because
	// browsers switch addresses (IPv4/IPv6, mobile networks) between sites.
	BindIP bool `yaml:"bind_ip" ussync:"live"`
	// TicketTTL is how long a hand-off ticket may be redeemed (at most 10m).
	TicketTTL Duration `yaml:"ticket_ttl" ussync:"live"`
	// Modes are the hand-off modes this site offers, from "chain" (top-level
	// redirects through every site; works with third-party cookies blocked),
	// "lazy" (a site with no cookie asks the others when the browser arrives)
	// and "iframe" (hidden iframes; only where third-party cookies are allowed):
	// client.ModeChain, client.ModeLazy, client.ModeIframe.
	Modes []string `yaml:"modes" ussync:"live"`
	// HopInterval is the least time between two hand-off rounds for one
	// browser at this site: a browser that was just sent round the sites (and
	// came back without a session, in lazy mode) is not sent again before it,
	// so a logged-out visitor does not bounce on every page.
	HopInterval Duration `yaml:"hop_interval" ussync:"live"`
	// FailClosedAfter, when positive, is how long this node may be catching
	// up or isolated before its session checks answer 503 node_isolated
	// instead of 200 (sites fail closed). Zero: never; the checks say the
	// node's state (client.HeaderNodeState) all the same.
	FailClosedAfter Duration `yaml:"fail_closed_after"`
}

// AdminSection is the `admin:` section: the administrator web page served
// at /admin/ on the private listener (api.listen).
type AdminSection struct {
	// Enabled serves the page. Off: /admin/ answers 404.
	Enabled bool `yaml:"enabled"`
	// PasswordFile is a file holding a bcrypt hash of an administrator
	// password (`htpasswd -nBC 12 admin` writes one; a leading "admin:" is
	// ignored). Empty: the page accepts the API token only. The API token is
	// always accepted.
	PasswordFile string `yaml:"password_file" ussync:"live"`
	// SessionTTL is how long an administrator stays logged in to the page.
	SessionTTL Duration `yaml:"session_ttl"`
}

// How the SMTP connection is encrypted. See SMTPSection.StartTLS.
const (
	StartTLSMandatory     = "mandatory"
	StartTLSOpportunistic = "opportunistic"
	StartTLSNone          = "none"
)

// SMTP authentication mechanisms. See SMTPSection.Auth.
const (
	SMTPAuthPlain        = "plain"
	SMTPAuthLogin        = "login"
	SMTPAuthCramMD5      = "cram-md5"
	SMTPAuthScramSHA256  = "scram-sha-256"
	SMTPAuthAutoDiscover = "auto"
)

// smtpsPort is the port of SMTP over implicit TLS (RFC 8314 "submissions").
const smtpsPort = 465

// SMTPSection is the `smtp:` section: the mail server verification codes
// are sent through (the site's usual submission server or relay).
type SMTPSection struct {
	// Host is the SMTP server's host name or IP address. Empty: this node
	// sends no mail, and POST /v1/users/{email}/verification answers 503.
	Host string `yaml:"host"`
	// Port is the server's port: 587 (submission, STARTTLS), 465 (implicit
	// TLS: the connection is TLS from the first byte, and starttls does not
	// apply) or 25 (a relay).
	Port int `yaml:"port"`
	// Username, when set, makes the node authenticate (SMTP AUTH) with
	// Password. Empty: no authentication (a relay that trusts the node).
	Username string `yaml:"username"`
	// Password is the SMTP password inline. Allowed but discouraged, as for
	// gossip.secrets; prefer PasswordFile or USSYNC_SMTP_PASSWORD. At most
	// one of Password and PasswordFile may be set.
	Password string `yaml:"password" ussync:"secret,alt=password_file"`
	// PasswordFile is a file holding the SMTP password (a trailing newline
	// is ignored).
	PasswordFile string `yaml:"password_file" ussync:"alt=password"`
	// From is the sender of the messages: an address, optionally with a
	// name ("Example <no-reply@example.com>"). Required with Host.
	From string `yaml:"from"`
	// StartTLS is how a connection on a port other than 465 is encrypted:
	// "mandatory" (STARTTLS or no mail: the code and the password never
	// cross the network in clear), "opportunistic" (STARTTLS when the server
	// offers it) or "none" (plain text; for a relay on the same machine).
	StartTLS string `yaml:"starttls"`
	// Auth is the SMTP AUTH mechanism used with Username: "plain", "login",
	// "cram-md5", "scram-sha-256" or "auto" (the strongest the server
	// offers). "plain" and "login" send the password only over TLS or to
	// localhost.
	Auth string `yaml:"auth"`
	// Timeout bounds connecting to the server and each step of a send.
	Timeout Duration `yaml:"timeout"`
}

// Enabled reports whether a mail server is configured.
func (s SMTPSection) Enabled() bool { return s.Host != "" }

// ImplicitTLS reports whether the connection is TLS from the start (port
// 465) rather than upgraded with STARTTLS.
func (s SMTPSection) ImplicitTLS() bool { return s.Port == smtpsPort }

// VerificationSection is the `verification:` section: e-mail verification
// by a code the user types or a one-click link, both sent by mail.
type VerificationSection struct {
	// CodeTTL is how long a code (and its link) may be used (at most 24h).
	CodeTTL Duration `yaml:"code_ttl"`
	// MaxAttempts is how many wrong codes are accepted before the code is
	// locked; a new code must then be requested.
	MaxAttempts int `yaml:"max_attempts"`
	// ResendInterval is the least time between two messages to one address
	// (0: no minimum).
	ResendInterval Duration `yaml:"resend_interval"`
	// MaxSendsPerHour is the most messages sent to one address in any hour.
	MaxSendsPerHour int `yaml:"max_sends_per_hour"`
	// MaxFailuresPerDay is the most wrong codes this node accepts for one
	// address in any 24 hours, whatever the number of codes sent: past it,
	// every code for the address is locked until the oldest failure is a
	// day old (the link in the message still works: it cannot be guessed).
	// It bounds the odds of guessing a code (docs/verification.md).
	MaxFailuresPerDay int `yaml:"max_failures_per_day"`
	// Templates is a directory whose verify.txt.tmpl and verify.html.tmpl
	// (either or both) replace the built-in message templates: Go
	// text/template and html/template over .Code, .Link, .Site, .Email and
	// .Expires (minutes). The text template may define "subject". Empty:
	// the built-in templates.
	Templates string `yaml:"templates"`
}

// LogSection is the `log:` section.
type LogSection struct {
	// Level is the least severity logged: debug, info, warn or error.
	Level string `yaml:"level" ussync:"live"`
	// Format is "text" (logfmt-like, for people) or "json" (for collectors).
	Format string `yaml:"format"`
}

// DefaultConfig returns the configuration of a production node before any file,
// environment or flag is applied. site.url, a secret and an API token have no
// default and must be given.
//
// It is one long literal on purpose, as memberlist's DefaultLANConfig is:
// every default sits beside the reason for it, in the order of the file.
func DefaultConfig() Config {
	// The host name is unique per machine and means something to an operator
	// reading `ussync status`; one node per machine is the common case.
	name, _ := os.Hostname()
	return Config{
		Node: NodeSection{
			Name: name,
			// Beside the working directory, like most daemons' quick starts;
			// packaged installs set /var/lib/ussync.
			DataDir: "./ussync-data",
			// Sites usually sit in different data centres across the internet:
			// WAN timings tolerate its latency and loss without false deaths.
			Profile: string(gossip.ProfileWAN),
		},
		Cluster: ClusterSection{
			// NTP keeps clocks within tens of milliseconds; 5 s leaves room
			// for a clock just stepped, and bounds how far a wrong clock's
			// writes can win (session.DefaultMaxOffset; cockroach's HLC uses
			// 500 ms on its own LAN).
			MaxClockOffset: Duration(session.DefaultMaxOffset),
		},
		Site: SiteSection{
			// The point of ussync is one login for all sites; a site that wants
			// its own registration only says so explicitly.
			OnUnknownUser: UnknownUserCreate,
			// 5 s: a site that stops answering, or a node that crashes, is
			// skipped by the others' hand-offs within about 15 s, sooner
			// than memberlist declares a node dead under the wan profile;
			// one small request and one metadata update every 5 s cost
			// nothing.
			HealthInterval: Duration(5 * time.Second),
		},
		Gossip: GossipSection{
			// memberlist's usual port, on every interface: peers are elsewhere.
			Bind: "0.0.0.0:7946",
		},
		API: APISection{
			// Loopback: the site's backend runs on the same machine, and
			// nothing else should reach the private API.
			Listen: "127.0.0.1:7947",
			// A request of the private API is a small JSON body from the
			// same machine: ten seconds is slack, and a client that
			// dribbles its body is cut off soon.
			ReadTimeout: Duration(10 * time.Second),
			// Two minutes: a verification request waits for the mail
			// server (smtp.timeout per step); a client that does not read
			// its answer is cut off after it.
			WriteTimeout: Duration(2 * time.Minute),
			// Far above what a site's backend keeps open (a connection per
			// PHP worker), far below the process's file limit.
			MaxConnections: 4096,
		},
		Public: PublicSection{
			// Loopback: the site's reverse proxy forwards <site url>ussync/ to
			// it. Serving the internet directly needs tls_cert/tls_key and an
			// explicit listen address.
			Listen: "127.0.0.1:7948",
			// Browsers send small requests; ten seconds covers a slow mobile
			// link and cuts off a client dribbling a body (the reverse
			// proxy in front usually buffers bodies anyway).
			ReadTimeout: Duration(10 * time.Second),
			// Every public answer is computed in milliseconds.
			WriteTimeout: Duration(30 * time.Second),
			// As for the API: room for every browser of a busy site behind
			// a proxy that reuses its connections.
			MaxConnections: 4096,
		},
		Session: SessionSection{
			// 14 days: the usual "remember me" lifetime of CMS logins.
			TTL: Duration(14 * 24 * time.Hour),
			// A year: the longest "remember me" any site asks for; a
			// session sealed to live longer is refused everywhere.
			MaxTTL: Duration(8760 * time.Hour),
			// 30 days: long enough to outlive any session and any partition
			// a node may come back from, short enough to bound the store.
			HistoryRetention: Duration(30 * 24 * time.Hour),
			// A minute: expiry is checked on read, so sweeping only reclaims
			// space and can be lazy, yet stays cheap per run.
			SweepInterval: Duration(time.Minute),
		},
		Sync: SyncSection{
			// An unverified email must not log anyone in on other sites.
			RequireVerified: true,
			// Browsers change address between requests too often for binding
			// to be a safe default; tickets are single-use and short-lived.
			BindIP: false,
			// A minute covers a slow chain of redirects, and a leaked ticket
			// (they sit in URLs) is useless soon after.
			TicketTTL: Duration(time.Minute),
			// Chain works with third-party cookies blocked, which is now the
			// browsers' default.
			Modes: []string{client.ModeChain},
			// Ten minutes: a visitor without a session costs one round of
			// redirects per ten minutes at most, and a login elsewhere is seen
			// here within that time even before the user logs in again.
			HopInterval: Duration(10 * time.Minute),
			// Off: a site whose node is cut off keeps working with what it
			// knows (logins and logouts made there still count), and every
			// check says so; failing closed logs every user of the site out
			// while the network is down, a choice for the site to make.
			FailClosedAfter: 0,
		},
		Admin: AdminSection{
			// The page is on the private listener, behind the API token:
			// it adds no way in, and operators expect it to be there.
			Enabled: true,
			// A working day: long enough not to interrupt an operator,
			// short enough that a forgotten browser is logged out by
			// the next morning.
			SessionTTL: Duration(8 * time.Hour),
		},
		SMTP: SMTPSection{
			// Submission with STARTTLS is what mail providers document for
			// programs that send mail.
			Port: 587,
			// A code and a password in clear on the network would defeat
			// the verification; a local relay says "none" explicitly.
			StartTLS: StartTLSMandatory,
			// PLAIN is the one mechanism nearly every server offers, and
			// go-mail sends it only over TLS or to localhost.
			Auth: SMTPAuthPlain,
			// Long enough for a slow relay, short enough that a site's
			// request does not hang on a dead one.
			Timeout: Duration(10 * time.Second),
		},
		Verification: VerificationSection{
			// 15 minutes: time to switch to the mailbox and back, short
			// enough that a leaked message is soon useless.
			CodeTTL: Duration(15 * time.Minute),
			// 5 tries of a 6-digit code: a guess succeeds once in 200,000.
			MaxAttempts: 5,
			// A minute: the user can ask again when a message is slow, a
			// script cannot flood the mailbox.
			ResendInterval: Duration(time.Minute),
			// 5 an hour bounds what a stranger can make the node send to
			// anyone's address (and the site's mail reputation).
			MaxSendsPerHour: 5,
			// 10 wrong codes a day: a typo-prone user never meets it, and
			// a guesser's odds stay at 1 in 100,000 a day per site.
			MaxFailuresPerDay: 10,
		},
		Log: LogSection{
			// Info logs joins, leaves and errors, not each request.
			Level: "info",
			// Text reads well in a terminal and in journald.
			Format: "text",
		},
	}
}

// DevConfig returns the defaults of a development node (`ussync agent --dev`):
// named "dev", local gossip timings, everything on loopback, site.url derived
// from public.listen by Validate. The data dir, secret and token are left for
// the caller, which generates throw-away ones.
func DevConfig() Config {
	c := DefaultConfig()
	c.Dev = true
	c.Node.Name = "dev"
	c.Node.Profile = string(gossip.ProfileLocal)
	c.Gossip.Bind = "127.0.0.1:7946"
	c.API.Listen = "127.0.0.1:7947"
	c.Public.Listen = "127.0.0.1:7948"
	return c
}

// Duration is a time.Duration written in YAML as a Go duration string: "60s",
// "10m", "336h". Convert with time.Duration(d).
type Duration time.Duration

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses a duration string; a bare number is refused (no unit).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a duration such as \"60s\", \"10m\" or \"336h\"", n.Line)}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration; write it with a unit, e.g. \"60s\", \"10m\", \"336h\"", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalText parses a duration string (flags, environment).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes d as a duration string (JSON, logs).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
