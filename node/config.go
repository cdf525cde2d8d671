package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
)

// Profiles name the gossip timing presets (memberlist's LAN, WAN and local
// configs). See NodeSection.Profile.
const (
	ProfileLAN   = "lan"
	ProfileWAN   = "wan"
	ProfileLocal = "local"
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
	// Profile is the gossip timing preset: "lan" (one data centre), "wan"
	// (sites across the internet) or "local" (one machine, tests).
	Profile string `yaml:"profile"`
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
	OnUnknownUser string `yaml:"on_unknown_user"`
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
	SecretFile string `yaml:"secret_file"`
	// Secrets are the cluster secrets inline, base64, primary first. Allowed but
	// discouraged: a secret in a config file ends up in backups and version
	// control; prefer SecretFile or the USSYNC_SECRET environment variable.
	// At most one of Secrets and SecretFile may be set.
	Secrets []string `yaml:"secrets"`
}

// APISection is the `api:` section.
type APISection struct {
	// Listen is the host:port of the private API. Keep it on loopback or a
	// private network: it answers for every user's sessions.
	Listen string `yaml:"listen"`
	// Token is the bearer token the site's backend must send. Allowed but
	// discouraged for the same reason as gossip.secrets; prefer TokenFile or
	// USSYNC_API_TOKEN. At most one of Token and TokenFile may be set.
	Token string `yaml:"token"`
	// TokenFile is a file holding the API token (surrounding whitespace ignored).
	TokenFile string `yaml:"token_file"`
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
	TTL Duration `yaml:"ttl"`
	// HistoryRetention is how long ended and expired sessions are kept (for
	// "where am I logged in" history and late gossip) before they are swept.
	HistoryRetention Duration `yaml:"history_retention"`
	// SweepInterval is how often the store removes records past retention.
	SweepInterval Duration `yaml:"sweep_interval"`
}

// SyncSection is the `sync:` section.
type SyncSection struct {
	// RequireVerified keeps the sessions of users whose email is not verified on
	// their own site: without it, anyone who registers someone else's address on
	// one site is logged in as them everywhere.
	RequireVerified bool `yaml:"require_verified"`
	// BindIP binds each ticket to the client IP that asked for it: a ticket
	// redeemed from another address is refused. Off by default because
	// browsers switch addresses (IPv4/IPv6, mobile networks) between sites.
	BindIP bool `yaml:"bind_ip"`
	// TicketTTL is how long a hand-off ticket may be redeemed (at most 10m).
	TicketTTL Duration `yaml:"ticket_ttl"`
	// Modes are the hand-off modes this site offers, from "chain" (top-level
	// redirects through every site; works with third-party cookies blocked),
	// "lazy" (a site with no cookie asks the others when the browser arrives)
	// and "iframe" (hidden iframes; only where third-party cookies are allowed):
	// client.ModeChain, client.ModeLazy, client.ModeIframe.
	Modes []string `yaml:"modes"`
	// HopInterval is the least time between two hand-off rounds for one
	// browser at this site: a browser that was just sent round the sites (and
	// came back without a session, in lazy mode) is not sent again before it,
	// so a logged-out visitor does not bounce on every page.
	HopInterval Duration `yaml:"hop_interval"`
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
	PasswordFile string `yaml:"password_file"`
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
	Password string `yaml:"password"`
	// PasswordFile is a file holding the SMTP password (a trailing newline
	// is ignored).
	PasswordFile string `yaml:"password_file"`
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
	Level string `yaml:"level"`
	// Format is "text" (logfmt-like, for people) or "json" (for collectors).
	Format string `yaml:"format"`
}

// DefaultConfig returns the configuration of a production node before any file,
// environment or flag is applied. site.url, a secret and an API token have no
// default and must be given.
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
			Profile: ProfileWAN,
		},
		Site: SiteSection{
			// The point of ussync is one login for all sites; a site that wants
			// its own registration only says so explicitly.
			OnUnknownUser: UnknownUserCreate,
		},
		Gossip: GossipSection{
			// memberlist's usual port, on every interface: peers are elsewhere.
			Bind: "0.0.0.0:7946",
		},
		API: APISection{
			// Loopback: the site's backend runs on the same machine, and
			// nothing else should reach the private API.
			Listen: "127.0.0.1:7947",
		},
		Public: PublicSection{
			// Loopback: the site's reverse proxy forwards <site url>ussync/ to
			// it. Serving the internet directly needs tls_cert/tls_key and an
			// explicit listen address.
			Listen: "127.0.0.1:7948",
		},
		Session: SessionSection{
			// 14 days: the usual "remember me" lifetime of CMS logins.
			TTL: Duration(14 * 24 * time.Hour),
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
	c.Node.Profile = ProfileLocal
	c.Gossip.Bind = "127.0.0.1:7946"
	c.API.Listen = "127.0.0.1:7947"
	c.Public.Listen = "127.0.0.1:7948"
	return c
}

// LoadConfig reads the YAML file at path over DefaultConfig(). It does not
// validate: apply the environment and flags, then call Validate.
func LoadConfig(path string) (Config, error) {
	return ReadConfig(path, DefaultConfig())
}

// ReadConfig reads the YAML file at path over base: a key the file sets
// replaces base's value, a key it omits (or leaves empty) keeps it. An unknown
// key, a value of the wrong type or a second YAML document is an error naming
// the file and the line. It does not validate.
func ReadConfig(path string, base Config) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return base, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseConfig(data, base)
	if err != nil {
		return base, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes YAML data over base, strictly (see ReadConfig). Errors
// are one line and never quote a value (it might be a secret).
func ParseConfig(data []byte, base Config) (Config, error) {
	cfg := base
	// Copy the slices: decoding must not write through into base's arrays.
	cfg.Gossip.Join = slices.Clone(base.Gossip.Join)
	cfg.Gossip.Secrets = slices.Clone(base.Gossip.Secrets)
	cfg.Public.TrustedProxies = slices.Clone(base.Public.TrustedProxies)
	cfg.Sync.Modes = slices.Clone(base.Sync.Modes)

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) { // empty file or only comments
			return base, nil
		}
		return base, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return base, errors.New("more than one YAML document (a line with ---); keep one")
	}
	return cfg, nil
}

var (
	reUnknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)
	reCannot       = regexp.MustCompile("^line (\\d+): cannot unmarshal (\\S+)(?: `.*`)? into (\\S+)$")
	reQuoted       = regexp.MustCompile("`.*`")
	// sectionOf maps the Go type of each section to its YAML path, to name the
	// section of an unknown key.
	sectionOf = func() map[string]string {
		m := map[string]string{reflect.TypeFor[Config]().String(): ""}
		t := reflect.TypeFor[Config]()
		for i := range t.NumField() {
			f := t.Field(i)
			if tag := strings.Split(f.Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" && f.Type.Kind() == reflect.Struct {
				m[f.Type.String()] = tag
			}
		}
		return m
	}()
)

// yamlError turns a yaml.v3 error into one line that names keys and types in
// the file's terms and never repeats the offending value.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// Syntax errors: "yaml: line 3: mapping values are not allowed ...".
		return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := reUnknownField.FindStringSubmatch(e); m != nil {
			where := "at the top level"
			if s := sectionOf[m[3]]; s != "" {
				where = "in section " + s
			}
			msgs = append(msgs, fmt.Sprintf("line %s: unknown key %q %s", m[1], m[2], where))
			continue
		}
		if m := reCannot.FindStringSubmatch(e); m != nil {
			msgs = append(msgs, fmt.Sprintf("line %s: expected %s, found %s", m[1], typeWords(m[3]), tagWords(m[2])))
			continue
		}
		msgs = append(msgs, reQuoted.ReplaceAllString(e, "a value"))
	}
	return errors.New(strings.Join(msgs, "; "))
}

func typeWords(goType string) string {
	switch {
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case goType == "int":
		return "a whole number"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case goType == "node.Duration":
		return "a duration"
	case strings.HasPrefix(goType, "node."):
		return "a mapping of keys"
	}
	return goType
}

func tagWords(tag string) string {
	switch strings.TrimPrefix(tag, "!!") {
	case "str":
		return "a string"
	case "int", "float":
		return "a number"
	case "bool":
		return "true/false"
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	case "null":
		return "nothing"
	}
	return tag
}

// ApplyEnv applies the environment-only settings, the secrets kept out of
// flags (command lines are visible to every local user): USSYNC_SECRET (the
// secret text, base64 secrets separated by newlines or spaces, primary first)
// replaces gossip.secrets and gossip.secret_file; USSYNC_API_TOKEN replaces
// api.token and api.token_file; USSYNC_SMTP_PASSWORD replaces smtp.password
// and smtp.password_file. Empty or unset variables change nothing.
// getenv is os.Getenv outside tests.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if s := strings.Fields(getenv("USSYNC_SECRET")); len(s) > 0 {
		c.Gossip.Secrets = s
		c.Gossip.SecretFile = ""
	}
	if t := strings.TrimSpace(getenv("USSYNC_API_TOKEN")); t != "" {
		c.API.Token = t
		c.API.TokenFile = ""
	}
	if p := getenv("USSYNC_SMTP_PASSWORD"); p != "" {
		c.SMTP.Password = p
		c.SMTP.PasswordFile = ""
	}
}

// Validate checks every field and names the first bad one, e.g.
// `api.listen: "foo" is not host:port`. It normalises in place: site.url gets
// its trailing slash and, on a dev node, a default derived from public.listen.
// It reads no file: Secrets and APIToken do.
func (c *Config) Validate() error {
	if err := validName(c.Node.Name); err != nil {
		return fmt.Errorf("node.name: %w", err)
	}
	if strings.TrimSpace(c.Node.DataDir) == "" {
		return errors.New("node.data_dir: required")
	}
	if err := oneOf(c.Node.Profile, ProfileLAN, ProfileWAN, ProfileLocal); err != nil {
		return fmt.Errorf("node.profile: %w", err)
	}

	if c.Site.URL == "" && c.Dev {
		if err := hostPort(c.Public.Listen, true); err != nil {
			return fmt.Errorf("public.listen: %w", err)
		}
		c.Site.URL = devSiteURL(c.Public.Listen)
	}
	u, err := siteURL(c.Site.URL)
	if err != nil {
		return fmt.Errorf("site.url: %w", err)
	}
	c.Site.URL = u
	if err := oneOf(c.Site.OnUnknownUser, UnknownUserCreate, UnknownUserReject); err != nil {
		return fmt.Errorf("site.on_unknown_user: %w", err)
	}

	if err := ipPort(c.Gossip.Bind, true); err != nil {
		return fmt.Errorf("gossip.bind: %w", err)
	}
	if c.Gossip.Advertise != "" {
		if err := ipPort(c.Gossip.Advertise, false); err != nil {
			return fmt.Errorf("gossip.advertise: %w", err)
		}
		if ip, _ := netip.ParseAddrPort(c.Gossip.Advertise); ip.Addr().IsUnspecified() {
			return fmt.Errorf("gossip.advertise: %q is not an address others can reach", c.Gossip.Advertise)
		}
	}
	for i, j := range c.Gossip.Join {
		if err := hostPort(j, false); err != nil {
			return fmt.Errorf("gossip.join[%d]: %w", i, err)
		}
	}
	if len(c.Gossip.Secrets) > 0 && c.Gossip.SecretFile != "" {
		return errors.New("gossip.secrets and gossip.secret_file are both set; keep one")
	}
	for i, s := range c.Gossip.Secrets {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("gossip.secrets[%d]: empty", i)
		}
	}

	if err := hostPort(c.API.Listen, true); err != nil {
		return fmt.Errorf("api.listen: %w", err)
	}
	if c.API.Token != "" && c.API.TokenFile != "" {
		return errors.New("api.token and api.token_file are both set; keep one")
	}

	if err := hostPort(c.Public.Listen, true); err != nil {
		return fmt.Errorf("public.listen: %w", err)
	}
	if c.API.Listen == c.Public.Listen && !strings.HasSuffix(c.API.Listen, ":0") { // port 0: the kernel picks two
		return fmt.Errorf("public.listen: %q is also api.listen; the two listeners need their own ports", c.Public.Listen)
	}
	if (c.Public.TLSCert == "") != (c.Public.TLSKey == "") {
		return errors.New("public.tls_cert, public.tls_key: set both or neither")
	}
	for i, p := range c.Public.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			hint := ""
			if _, err := netip.ParseAddr(p); err == nil {
				hint = " (a single address is written /32 or /128)"
			}
			return fmt.Errorf("public.trusted_proxies[%d]: %q is not a CIDR prefix%s", i, p, hint)
		}
	}

	if err := positive(c.Session.TTL); err != nil {
		return fmt.Errorf("session.ttl: %w", err)
	}
	if err := positive(c.Session.HistoryRetention); err != nil {
		return fmt.Errorf("session.history_retention: %w", err)
	}
	if c.Session.SweepInterval < Duration(time.Second) {
		return fmt.Errorf("session.sweep_interval: %s is under 1s", c.Session.SweepInterval)
	}

	if err := positive(c.Sync.TicketTTL); err != nil {
		return fmt.Errorf("sync.ticket_ttl: %w", err)
	}
	if c.Sync.TicketTTL > Duration(10*time.Minute) {
		return fmt.Errorf("sync.ticket_ttl: %s is over 10m; tickets sit in URLs and must expire soon", c.Sync.TicketTTL)
	}
	if len(c.Sync.Modes) == 0 {
		return errors.New("sync.modes: empty; list at least one of chain, lazy, iframe")
	}
	for i, m := range c.Sync.Modes {
		if err := oneOf(m, client.ModeChain, client.ModeLazy, client.ModeIframe); err != nil {
			return fmt.Errorf("sync.modes[%d]: %w", i, err)
		}
		if slices.Contains(c.Sync.Modes[:i], m) {
			return fmt.Errorf("sync.modes[%d]: %q is listed twice", i, m)
		}
	}
	if err := positive(c.Sync.HopInterval); err != nil {
		return fmt.Errorf("sync.hop_interval: %w", err)
	}

	if err := positive(c.Admin.SessionTTL); err != nil {
		return fmt.Errorf("admin.session_ttl: %w", err)
	}
	if c.Admin.SessionTTL > Duration(7*24*time.Hour) {
		return fmt.Errorf("admin.session_ttl: %s is over 168h; log in again at least once a week", c.Admin.SessionTTL)
	}

	if err := c.SMTP.validate(); err != nil {
		return err
	}
	if err := c.Verification.validate(); err != nil {
		return err
	}

	if err := oneOf(c.Log.Level, "debug", "info", "warn", "error"); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	if err := oneOf(c.Log.Format, "text", "json"); err != nil {
		return fmt.Errorf("log.format: %w", err)
	}
	return nil
}

// validate checks the smtp section when a host is set (without one the
// other keys are unused).
func (s SMTPSection) validate() error {
	if s.Host == "" {
		return nil
	}
	if !plainHost(s.Host) {
		return fmt.Errorf("smtp.host: %q is not a host name or IP address", s.Host)
	}
	if s.Port < 1 || s.Port > 65535 {
		return fmt.Errorf("smtp.port: %d is not a port from 1 to 65535", s.Port)
	}
	if s.From == "" {
		return errors.New("smtp.from: required with smtp.host (the sender of the verification messages)")
	}
	if a, err := mail.ParseAddress(s.From); err != nil || a.Address == "" {
		return fmt.Errorf("smtp.from: %q is not an address (e.g. \"Example <no-reply@example.com>\")", s.From)
	}
	if err := oneOf(s.StartTLS, StartTLSMandatory, StartTLSOpportunistic, StartTLSNone); err != nil {
		return fmt.Errorf("smtp.starttls: %w", err)
	}
	if s.ImplicitTLS() && s.StartTLS == StartTLSNone {
		return fmt.Errorf("smtp.starttls: %q with port %d, which is TLS from the start; use port 25 or 587 for plain text", s.StartTLS, smtpsPort)
	}
	if err := oneOf(s.Auth, SMTPAuthPlain, SMTPAuthLogin, SMTPAuthCramMD5, SMTPAuthScramSHA256, SMTPAuthAutoDiscover); err != nil {
		return fmt.Errorf("smtp.auth: %w", err)
	}
	if s.Password != "" && s.PasswordFile != "" {
		return errors.New("smtp.password and smtp.password_file are both set; keep one")
	}
	if s.Username == "" && (s.Password != "" || s.PasswordFile != "") {
		return errors.New("smtp.username: required with a password")
	}
	if s.Timeout < Duration(time.Second) {
		return fmt.Errorf("smtp.timeout: %s is under 1s", s.Timeout)
	}
	return nil
}

// validate checks the verification section.
func (v VerificationSection) validate() error {
	if err := positive(v.CodeTTL); err != nil {
		return fmt.Errorf("verification.code_ttl: %w", err)
	}
	if v.CodeTTL > Duration(24*time.Hour) {
		return fmt.Errorf("verification.code_ttl: %s is over 24h", v.CodeTTL)
	}
	if v.MaxAttempts < 1 || v.MaxAttempts > 100 {
		return fmt.Errorf("verification.max_attempts: %d is not from 1 to 100", v.MaxAttempts)
	}
	if v.ResendInterval < 0 || v.ResendInterval > Duration(time.Hour) {
		return fmt.Errorf("verification.resend_interval: %s is not from 0s to 1h", v.ResendInterval)
	}
	if v.MaxSendsPerHour < 1 || v.MaxSendsPerHour > 1000 {
		return fmt.Errorf("verification.max_sends_per_hour: %d is not from 1 to 1000", v.MaxSendsPerHour)
	}
	return nil
}

// SMTPPassword returns the SMTP password: smtp.password (which
// USSYNC_SMTP_PASSWORD fills) if set, else the content of
// smtp.password_file without its trailing newline; "" when neither is set.
// Errors never contain the password.
func (c Config) SMTPPassword() (string, error) {
	if c.SMTP.Password != "" || c.SMTP.PasswordFile == "" {
		return c.SMTP.Password, nil
	}
	b, err := os.ReadFile(c.SMTP.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("read smtp.password_file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("smtp.password_file %s: empty", c.SMTP.PasswordFile)
	}
	return pw, nil
}

// Secrets returns the raw text of the cluster secrets, base64 secrets one per
// line, primary first: gossip.secrets (which USSYNC_SECRET fills) if set, else
// the content of gossip.secret_file. Parsing it is the keyring's job. It returns
// ErrNoSecret when neither is set. Errors never contain the secret.
func (c Config) Secrets() (string, error) {
	if len(c.Gossip.Secrets) > 0 {
		return strings.Join(c.Gossip.Secrets, "\n") + "\n", nil
	}
	if c.Gossip.SecretFile == "" {
		return "", ErrNoSecret
	}
	b, err := os.ReadFile(c.Gossip.SecretFile)
	if err != nil {
		return "", fmt.Errorf("read gossip.secret_file: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", fmt.Errorf("gossip.secret_file %s: empty (generate a secret with `ussync keygen`)", c.Gossip.SecretFile)
	}
	return string(b), nil
}

// APIToken returns the private API's bearer token: api.token (which
// USSYNC_API_TOKEN fills) if set, else the trimmed content of api.token_file.
// It returns ErrNoAPIToken when neither is set, and refuses a token shorter than
// 16 characters or holding whitespace. Errors never contain the token.
func (c Config) APIToken() (string, error) {
	tok, field := c.API.Token, "api.token"
	if tok == "" {
		if c.API.TokenFile == "" {
			return "", ErrNoAPIToken
		}
		b, err := os.ReadFile(c.API.TokenFile)
		if err != nil {
			return "", fmt.Errorf("read api.token_file: %w", err)
		}
		tok, field = strings.TrimSpace(string(b)), "api.token_file "+c.API.TokenFile
		if tok == "" {
			return "", fmt.Errorf("%s: empty (generate a token with `ussync keygen`)", field)
		}
	}
	if strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("%s: the token holds whitespace or control characters", field)
	}
	if len(tok) < minTokenLen {
		return "", fmt.Errorf("%s: the token is shorter than %d characters (generate one with `ussync keygen`)", field, minTokenLen)
	}
	return tok, nil
}

// AdminPassword returns the administrator password hash of
// admin.password_file, or a zero hash when none is configured (the page then
// takes the API token only). Errors never contain the file's content.
func (c Config) AdminPassword() (crypto.PasswordHash, error) {
	if c.Admin.PasswordFile == "" {
		return crypto.PasswordHash{}, nil
	}
	b, err := os.ReadFile(c.Admin.PasswordFile)
	if err != nil {
		return crypto.PasswordHash{}, fmt.Errorf("read admin.password_file: %w", err)
	}
	h, err := crypto.ParsePasswordHash(string(b))
	if err != nil {
		return crypto.PasswordHash{}, fmt.Errorf("admin.password_file %s: %w", c.Admin.PasswordFile, err)
	}
	return h, nil
}

const redacted = "[redacted]"

// Redacted returns a copy of c with gossip.secrets, api.token and
// smtp.password replaced by a marker (file paths are kept: they are not
// secret).
func (c Config) Redacted() Config {
	if c.SMTP.Password != "" {
		c.SMTP.Password = redacted
	}
	if len(c.Gossip.Secrets) > 0 {
		c.Gossip.Secrets = []string{redacted}
	}
	if c.API.Token != "" {
		c.API.Token = redacted
	}
	return c
}

// String returns c as YAML with its secrets redacted.
func (c Config) String() string {
	b, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return "config: " + err.Error()
	}
	return string(b)
}

// GoString is String, so %#v does not print secrets either.
func (c Config) GoString() string { return c.String() }

// LogValue logs c with its secrets redacted.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

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

func positive(d Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s is not a positive duration", d)
	}
	return nil
}

func oneOf(v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

func validName(s string) error {
	if s == "" {
		return errors.New("required (it defaults to the host name)")
	}
	if len(s) > 64 {
		return fmt.Errorf("%q is longer than 64 characters", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q may hold only letters, digits, '.', '_' and '-'", s)
		}
	}
	return nil
}

// hostPort checks s is host:port with a numeric port; port 0 (any free port)
// only when listening.
func hostPort(s string, listen bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if !listen && host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
	}
	if p == 0 && !listen {
		return fmt.Errorf("%q: port 0 cannot be dialled", s)
	}
	return nil
}

// ipPort is hostPort with an IP literal (or empty) host: memberlist binds and
// advertises addresses, not names.
func ipPort(s string, listen bool) error {
	if err := hostPort(s, listen); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(s)
	if host == "" && listen {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("%q: %q is not an IP address", s, host)
	}
	return nil
}

func siteURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("required: the site's public base URL, e.g. https://example.com/")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.User != nil {
		return "", fmt.Errorf("%q holds a user name or password", u.Redacted())
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("%q has a query or fragment; give the base URL only", s)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	return u.String(), nil
}

// devSiteURL is the site URL of a dev node: its public listener on loopback.
func devSiteURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "" // Validate checked it first
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
