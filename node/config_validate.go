package node

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
)

// Validate checks every field and names the first bad one, e.g.
// `api.listen: "foo" is not host:port`; it checks the sections in the order
// of the file, each on its own. It then derives what the checked values
// imply: site.url gets its trailing slash and, on a dev node without one, a
// default from public.listen. It reads no file: Secrets and APIToken do.
// The error is one line, prefixed by the field's path; c is changed only
// when every field is valid.
func (c *Config) Validate() error {
	for _, check := range []func() error{
		c.Node.validate,
		c.Cluster.validate,
		func() error { return c.Site.validate(c.Dev, c.Public.Listen) },
		c.Gossip.validate,
		c.API.validate,
		func() error { return c.Public.validate(c.API.Listen) },
		c.Session.validate,
		c.Sync.validate,
		c.Admin.validate,
		c.SMTP.validate,
		c.Verification.validate,
		c.Log.validate,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	c.derive()
	return nil
}

// derive fills in what Validate accepted and implies: site.url with its
// trailing slash, and a dev node's site.url from public.listen.
func (c *Config) derive() {
	if c.Site.URL == "" && c.Dev {
		c.Site.URL = devSiteURL(c.Public.Listen)
	}
	c.Site.URL, _ = siteURL(c.Site.URL) // validated: it parses
}

func (n NodeSection) validate() error {
	if err := validName(n.Name); err != nil {
		return fmt.Errorf("node.name: %w", err)
	}
	if strings.TrimSpace(n.DataDir) == "" {
		return errors.New("node.data_dir: required")
	}
	if err := oneOf(n.Profile, string(gossip.ProfileLAN), string(gossip.ProfileWAN), string(gossip.ProfileLocal)); err != nil {
		return fmt.Errorf("node.profile: %w", err)
	}
	return nil
}

// validate checks the site section; a dev node's empty URL stands for the
// one derived from publicListen, which must then be usable.
func (s SiteSection) validate(dev bool, publicListen string) error {
	u := s.URL
	if u == "" && dev {
		if err := hostPort(publicListen, true); err != nil {
			return fmt.Errorf("public.listen: %w", err)
		}
		u = devSiteURL(publicListen)
	}
	if _, err := siteURL(u); err != nil {
		return fmt.Errorf("site.url: %w", err)
	}
	if err := oneOf(s.OnUnknownUser, UnknownUserCreate, UnknownUserReject); err != nil {
		return fmt.Errorf("site.on_unknown_user: %w", err)
	}
	if h := s.HealthURL; h != "" && h != HealthOff {
		if u, err := url.Parse(h); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("site.health_url: %q is not an absolute http(s) URL (or %q)", h, HealthOff)
		}
	}
	if s.HealthInterval < Duration(time.Second) || s.HealthInterval > Duration(5*time.Minute) {
		return fmt.Errorf("site.health_interval: %s is not between 1s and 5m", s.HealthInterval)
	}
	return nil
}

func (g GossipSection) validate() error {
	if err := ipPort(g.Bind, true); err != nil {
		return fmt.Errorf("gossip.bind: %w", err)
	}
	if g.Advertise != "" {
		if err := ipPort(g.Advertise, false); err != nil {
			return fmt.Errorf("gossip.advertise: %w", err)
		}
		if ip, _ := netip.ParseAddrPort(g.Advertise); ip.Addr().IsUnspecified() {
			return fmt.Errorf("gossip.advertise: %q is not an address others can reach", g.Advertise)
		}
	}
	for i, j := range g.Join {
		if err := hostPort(j, false); err != nil {
			return fmt.Errorf("gossip.join[%d]: %w", i, err)
		}
	}
	if len(g.Secrets) > 0 && g.SecretFile != "" {
		return errors.New("gossip.secrets and gossip.secret_file are both set; keep one")
	}
	for i, s := range g.Secrets {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("gossip.secrets[%d]: empty", i)
		}
	}
	return nil
}

func (a APISection) validate() error {
	if err := validateAPIListen(a.Listen); err != nil {
		return fmt.Errorf("api.listen: %w", err)
	}
	if a.Token != "" && a.TokenFile != "" {
		return errors.New("api.token and api.token_file are both set; keep one")
	}
	for i, h := range a.AllowedHosts {
		if !plainHost(h) || strings.Contains(h, ":") {
			return fmt.Errorf("api.allowed_hosts[%d]: %q is not a host name (write it without scheme or port)", i, h)
		}
	}
	return listenerLimits("api", a.ReadTimeout, a.WriteTimeout, a.MaxConnections)
}

// listenerLimits checks the timeouts and the connection cap of the HTTP
// listener of section.
func listenerLimits(section string, read, write Duration, maxConns int) error {
	if read < Duration(time.Second) {
		return fmt.Errorf("%s.read_timeout: %s is under 1s", section, read)
	}
	if write < Duration(time.Second) {
		return fmt.Errorf("%s.write_timeout: %s is under 1s", section, write)
	}
	if maxConns < 1 || maxConns > maxConnectionsCap {
		return fmt.Errorf("%s.max_connections: %d is not from 1 to %d", section, maxConns, maxConnectionsCap)
	}
	return nil
}

// maxConnectionsCap bounds api/public.max_connections: each connection
// holds a file descriptor and a few KiB.
const maxConnectionsCap = 1 << 20

// validate checks the public section; its listener must not be the private
// API's (apiListen).
func (p PublicSection) validate(apiListen string) error {
	if err := hostPort(p.Listen, true); err != nil {
		return fmt.Errorf("public.listen: %w", err)
	}
	if apiListen == p.Listen && !strings.HasSuffix(apiListen, ":0") { // port 0: the kernel picks two
		return fmt.Errorf("public.listen: %q is also api.listen; the two listeners need their own ports", p.Listen)
	}
	if (p.TLSCert == "") != (p.TLSKey == "") {
		return errors.New("public.tls_cert, public.tls_key: set both or neither")
	}
	for i, pfx := range p.TrustedProxies {
		if _, err := netip.ParsePrefix(pfx); err != nil {
			hint := ""
			if _, err := netip.ParseAddr(pfx); err == nil {
				hint = " (a single address is written /32 or /128)"
			}
			return fmt.Errorf("public.trusted_proxies[%d]: %q is not a CIDR prefix%s", i, pfx, hint)
		}
	}
	return listenerLimits("public", p.ReadTimeout, p.WriteTimeout, p.MaxConnections)
}

func (c ClusterSection) validate() error {
	if c.MaxClockOffset < Duration(100*time.Millisecond) || c.MaxClockOffset > Duration(time.Minute) {
		return fmt.Errorf("cluster.max_clock_offset: %s is not from 100ms to 1m (run NTP rather than raise it)", c.MaxClockOffset)
	}
	return nil
}

func (s SessionSection) validate() error {
	if err := positive(s.TTL); err != nil {
		return fmt.Errorf("session.ttl: %w", err)
	}
	if s.TTL < Duration(time.Minute) {
		// Accepted, a typo such as 1ns would end every login at once.
		return fmt.Errorf("session.ttl: %s is under 1m (a login's session would end before its hand-off does)", s.TTL)
	}
	if err := positive(s.MaxTTL); err != nil {
		return fmt.Errorf("session.max_ttl: %w", err)
	}
	if s.MaxTTL > Duration(10*8760*time.Hour) {
		return fmt.Errorf("session.max_ttl: %s is over ten years", s.MaxTTL)
	}
	if s.TTL > s.MaxTTL {
		return fmt.Errorf("session.ttl: %s is over session.max_ttl (%s)", s.TTL, s.MaxTTL)
	}
	if err := positive(s.HistoryRetention); err != nil {
		return fmt.Errorf("session.history_retention: %w", err)
	}
	if s.SweepInterval < Duration(time.Second) {
		return fmt.Errorf("session.sweep_interval: %s is under 1s", s.SweepInterval)
	}
	return nil
}

func (s SyncSection) validate() error {
	if err := positive(s.TicketTTL); err != nil {
		return fmt.Errorf("sync.ticket_ttl: %w", err)
	}
	if s.TicketTTL > Duration(10*time.Minute) {
		return fmt.Errorf("sync.ticket_ttl: %s is over 10m; tickets sit in URLs and must expire soon", s.TicketTTL)
	}
	if len(s.Modes) == 0 {
		return errors.New("sync.modes: empty; list at least one of chain, lazy, iframe")
	}
	for i, m := range s.Modes {
		if err := oneOf(m, client.ModeChain, client.ModeLazy, client.ModeIframe); err != nil {
			return fmt.Errorf("sync.modes[%d]: %w", i, err)
		}
		if slices.Contains(s.Modes[:i], m) {
			return fmt.Errorf("sync.modes[%d]: %q is listed twice", i, m)
		}
	}
	if err := positive(s.HopInterval); err != nil {
		return fmt.Errorf("sync.hop_interval: %w", err)
	}
	if s.FailClosedAfter < 0 {
		return fmt.Errorf("sync.fail_closed_after: %s is negative (0 turns it off)", s.FailClosedAfter)
	}
	return nil
}

func (a AdminSection) validate() error {
	if err := positive(a.SessionTTL); err != nil {
		return fmt.Errorf("admin.session_ttl: %w", err)
	}
	if a.SessionTTL > Duration(7*24*time.Hour) {
		return fmt.Errorf("admin.session_ttl: %s is over 168h; log in again at least once a week", a.SessionTTL)
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
	if v.MaxFailuresPerDay < v.MaxAttempts || v.MaxFailuresPerDay > 1000 {
		return fmt.Errorf("verification.max_failures_per_day: %d is not from verification.max_attempts (%d) to 1000", v.MaxFailuresPerDay, v.MaxAttempts)
	}
	return nil
}

func (l LogSection) validate() error {
	if err := oneOf(l.Level, "debug", "info", "warn", "error"); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	if err := oneOf(l.Format, "text", "json"); err != nil {
		return fmt.Errorf("log.format: %w", err)
	}
	return nil
}

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
