package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
)

// validConfig is DefaultConfig with the required fields filled.
func validConfig(t *testing.T) Config {
	t.Helper()
	c := DefaultConfig()
	c.Node.Name = "site-a"
	c.Site.URL = "https://a.example/"
	c.Gossip.Secrets = []string{"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="}
	c.API.Token = "0123456789abcdef0123"
	if err := c.Validate(); err != nil {
		t.Fatalf("validConfig: %v", err)
	}
	return c
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfig_Defaults(t *testing.T) {
	c := DefaultConfig()
	if c.Node.Profile != string(gossip.ProfileWAN) || c.Gossip.Bind != "0.0.0.0:7946" || c.API.Listen != "127.0.0.1:7947" ||
		c.Public.Listen != "127.0.0.1:7948" || c.Node.DataDir != "./ussync-data" {
		t.Errorf("unexpected defaults: %+v", c.Redacted())
	}
	if time.Duration(c.Session.TTL) != 14*24*time.Hour || time.Duration(c.Session.HistoryRetention) != 30*24*time.Hour ||
		time.Duration(c.Sync.TicketTTL) != time.Minute || time.Duration(c.Sync.HopInterval) != 10*time.Minute {
		t.Errorf("unexpected default durations: %s", c)
	}
	if !c.Sync.RequireVerified || c.Sync.BindIP || !slices.Equal(c.Sync.Modes, []string{client.ModeChain}) {
		t.Errorf("unexpected sync defaults: %+v", c.Sync)
	}

	t.Run("only site.url is missing", func(t *testing.T) {
		c := DefaultConfig()
		c.Node.Name = "n1" // the host name may not be a valid node name in odd sandboxes
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "site.url:") {
			t.Fatalf("Validate() = %v, want a site.url error", err)
		}
		c.Site.URL = "https://a.example"
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate() with site.url = %v", err)
		}
		if c.Site.URL != "https://a.example/" {
			t.Errorf("site.url not normalised: %q", c.Site.URL)
		}
		if _, err := c.Secrets(); !errors.Is(err, ErrNoSecret) {
			t.Errorf("Secrets() = %v, want ErrNoSecret", err)
		}
		if _, err := c.APIToken(); !errors.Is(err, ErrNoAPIToken) {
			t.Errorf("APIToken() = %v, want ErrNoAPIToken", err)
		}
	})

	t.Run("dev derives site.url from public.listen", func(t *testing.T) {
		c := DevConfig()
		c.Public.Listen = "0.0.0.0:9000"
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.Site.URL != "http://127.0.0.1:9000/" {
			t.Errorf("site.url = %q", c.Site.URL)
		}
	})
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		field  string
		mutate func(*Config)
	}{
		{"node.name", func(c *Config) { c.Node.Name = "" }},
		{"node.name", func(c *Config) { c.Node.Name = "a b" }},
		{"node.data_dir", func(c *Config) { c.Node.DataDir = " " }},
		{"node.profile", func(c *Config) { c.Node.Profile = "moon" }},
		{"site.url", func(c *Config) { c.Site.URL = "a.example/" }},
		{"site.url", func(c *Config) { c.Site.URL = "ftp://a.example/" }},
		{"site.url", func(c *Config) { c.Site.URL = "https://a.example/?x=1" }},
		{"site.url", func(c *Config) { c.Site.URL = "https://u:p@a.example/" }},
		{"site.on_unknown_user", func(c *Config) { c.Site.OnUnknownUser = "maybe" }},
		{"gossip.bind", func(c *Config) { c.Gossip.Bind = "foo" }},
		{"gossip.bind", func(c *Config) { c.Gossip.Bind = "host.example:7946" }},
		{"gossip.bind", func(c *Config) { c.Gossip.Bind = "0.0.0.0:99999" }},
		{"gossip.advertise", func(c *Config) { c.Gossip.Advertise = "10.0.0.1" }},
		{"gossip.advertise", func(c *Config) { c.Gossip.Advertise = "0.0.0.0:7946" }},
		{"gossip.join[1]", func(c *Config) { c.Gossip.Join = []string{"b.example:7946", "c.example"} }},
		{"gossip.secrets and gossip.secret_file", func(c *Config) { c.Gossip.SecretFile = "/x" }},
		{"gossip.secrets[0]", func(c *Config) { c.Gossip.Secrets = []string{""} }},
		{"api.listen", func(c *Config) { c.API.Listen = "foo" }},
		{"api.token and api.token_file", func(c *Config) { c.API.TokenFile = "/x" }},
		{"public.listen", func(c *Config) { c.Public.Listen = ":" + "x" }},
		{"public.listen", func(c *Config) { c.Public.Listen = c.API.Listen }},
		{"public.tls_cert, public.tls_key", func(c *Config) { c.Public.TLSCert = "cert.pem" }},
		{"public.trusted_proxies[0]", func(c *Config) { c.Public.TrustedProxies = []string{"10.0.0.1"} }},
		{"cluster.max_clock_offset", func(c *Config) { c.Cluster.MaxClockOffset = 0 }},
		{"cluster.max_clock_offset", func(c *Config) { c.Cluster.MaxClockOffset = Duration(time.Hour) }},
		{"session.ttl", func(c *Config) { c.Session.TTL = 0 }},
		{"session.ttl", func(c *Config) { c.Session.TTL = Duration(9000 * time.Hour) }},
		{"session.ttl", func(c *Config) { c.Session.TTL = Duration(time.Nanosecond) }},
		{"session.max_ttl", func(c *Config) { c.Session.MaxTTL = 0 }},
		{"session.max_ttl", func(c *Config) { c.Session.MaxTTL = Duration(20 * 8760 * time.Hour) }},
		{"session.history_retention", func(c *Config) { c.Session.HistoryRetention = -1 }},
		{"session.sweep_interval", func(c *Config) { c.Session.SweepInterval = Duration(time.Millisecond) }},
		{"sync.ticket_ttl", func(c *Config) { c.Sync.TicketTTL = 0 }},
		{"sync.ticket_ttl", func(c *Config) { c.Sync.TicketTTL = Duration(time.Hour) }},
		{"sync.modes", func(c *Config) { c.Sync.Modes = nil }},
		{"sync.modes[1]", func(c *Config) { c.Sync.Modes = []string{"chain", "carrier-pigeon"} }},
		{"sync.modes[1]", func(c *Config) { c.Sync.Modes = []string{"lazy", "lazy"} }},
		{"sync.hop_interval", func(c *Config) { c.Sync.HopInterval = 0 }},
		{"verification.max_failures_per_day", func(c *Config) { c.Verification.MaxFailuresPerDay = 4 }},
		{"verification.max_failures_per_day", func(c *Config) { c.Verification.MaxFailuresPerDay = 5000 }},
		{"log.level", func(c *Config) { c.Log.Level = "loud" }},
		{"log.format", func(c *Config) { c.Log.Format = "xml" }},
	}
	checkRefusals(t, validConfig, tests, "c2VjcmV0", "0123456789abcdef")

	t.Run("accepts", func(t *testing.T) {
		c := validConfig(t)
		c.Gossip.Bind = ":7946"
		c.Gossip.Advertise = "[2001:db8::1]:7946"
		c.Gossip.Join = []string{"b.example:7946", "10.0.0.2:7946", "[2001:db8::2]:7946"}
		c.Site.URL = "https://example.com/blog"
		c.API.Listen = "localhost:0"
		c.Public.TrustedProxies = []string{"10.0.0.0/8", "::1/128", "192.168.1.7/24"}
		c.Sync.Modes = []string{client.ModeLazy, client.ModeChain, client.ModeIframe}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.Site.URL != "https://example.com/blog/" {
			t.Errorf("site.url = %q", c.Site.URL)
		}
		if got := fmt.Sprint(c.Public.TrustedPrefixes()); got != "[10.0.0.0/8 ::1/128 192.168.1.0/24]" {
			t.Errorf("TrustedPrefixes() = %s", got)
		}
	})
}

func TestConfig_Load(t *testing.T) {
	t.Run("overlays the file on the defaults", func(t *testing.T) {
		p := writeFile(t, "c.yaml", `
node:
  name: site-b
api:           # an empty section keeps its defaults
site:
  url: https://b.example/
gossip:
  join: [a.example:7946]
session:
  ttl: 48h
sync:
  modes: [lazy, chain]
`)
		c, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.Node.Name != "site-b" || c.Site.URL != "https://b.example/" || c.API.Listen != "127.0.0.1:7947" ||
			c.Node.Profile != string(gossip.ProfileWAN) || time.Duration(c.Session.TTL) != 48*time.Hour ||
			!slices.Equal(c.Gossip.Join, []string{"a.example:7946"}) || !slices.Equal(c.Sync.Modes, []string{"lazy", "chain"}) {
			t.Errorf("loaded %s", c)
		}
		if !c.Sync.RequireVerified {
			t.Error("require_verified lost its default")
		}
	})

	t.Run("explicit require_verified false", func(t *testing.T) {
		c, err := LoadConfig(writeFile(t, "c.yaml", "sync:\n  require_verified: false\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Sync.RequireVerified {
			t.Error("require_verified: false was ignored")
		}
	})

	t.Run("empty file is the defaults", func(t *testing.T) {
		c, err := LoadConfig(writeFile(t, "c.yaml", "# nothing\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c.String() != DefaultConfig().String() {
			t.Errorf("got %s", c)
		}
	})

	t.Run("does not write into base", func(t *testing.T) {
		base := DefaultConfig()
		if _, err := ParseConfig([]byte("sync:\n  modes: [lazy]\n"), base); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(base.Sync.Modes, []string{client.ModeChain}) {
			t.Errorf("base changed: %v", base.Sync.Modes)
		}
	})

	errs := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "api:\n  listen: 127.0.0.1:1\n  tokn: x\n", []string{"line 3", `unknown key "tokn"`, "section api"}},
		{"unknown top-level key", "nodes:\n  name: x\n", []string{"line 1", `unknown key "nodes"`, "top level"}},
		{"bad duration", "session:\n  ttl: 14 days\n", []string{"line 2", `"14 days" is not a duration`}},
		{"bare number duration", "sync:\n  ticket_ttl: 60\n", []string{"line 2", "is not a duration"}},
		{"bad bool", "sync:\n  bind_ip: maybe\n", []string{"line 2", "sync.bind_ip: expected true or false"}},
		{"scalar for a list", "gossip:\n  join: a.example:7946\n", []string{"line 2", "gossip.join: expected a list"}},
		{"string for a number", "api:\n  listen: 127.0.0.1:1\n  max_connections: lots\n", []string{"line 3", "api.max_connections: expected a whole number"}},
		{"list for a string", "node:\n  name: [a, b]\n", []string{"line 2", "node.name: expected a string"}},
		{"syntax", "node: [\n", []string{"yaml"}},
		{"two documents", "node:\n  name: a\n---\nnode:\n  name: b\n", []string{"more than one YAML document"}},
		{"duplicate key", "node:\n  name: a\n  name: b\n", []string{"already defined"}},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", tt.yaml)
			_, err := LoadConfig(p)
			if err == nil {
				t.Fatal("LoadConfig() = nil error")
			}
			msg := err.Error()
			for _, w := range append(tt.want, p) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans several lines", msg)
			}
		})
	}

	t.Run("endless file", func(t *testing.T) {
		if _, err := os.Stat("/dev/zero"); err != nil {
			t.Skip("no /dev/zero")
		}
		if _, err := LoadConfig("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a configuration file") {
			t.Errorf("LoadConfig(/dev/zero) = %v", err)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		if _, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
			t.Errorf("LoadConfig() = %v", err)
		}
	})
}

func TestDuration_UnmarshalYAML(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"60s": time.Minute, "336h": 14 * 24 * time.Hour, "1h30m": 90 * time.Minute, `"10m"`: 10 * time.Minute,
	} {
		c, err := ParseConfig([]byte("session:\n  ttl: "+in+"\n"), DefaultConfig())
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if time.Duration(c.Session.TTL) != want {
			t.Errorf("%s: got %s, want %s", in, c.Session.TTL, want)
		}
	}
	for _, in := range []string{"60", "1 day", "[1s]", "{a: 1}"} {
		if _, err := ParseConfig([]byte("session:\n  ttl: "+in+"\n"), DefaultConfig()); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

func TestConfig_Secrets(t *testing.T) {
	const secret = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
	const token = "tok-0123456789abcdef-secretvalue"

	t.Run("from file", func(t *testing.T) {
		c := validConfig(t)
		c.Gossip.Secrets = nil
		c.Gossip.SecretFile = writeFile(t, "secret", secret+"\nb2xkLXNlY3JldA==\n")
		got, err := c.Secrets()
		if err != nil {
			t.Fatal(err)
		}
		if got != secret+"\nb2xkLXNlY3JldA==\n" {
			t.Errorf("Secrets() = %q", got)
		}
	})

	// A path naming an endless or huge file by mistake is refused, not
	// read until memory runs out.
	t.Run("endless file", func(t *testing.T) {
		if _, err := os.Stat("/dev/zero"); err != nil {
			t.Skip("no /dev/zero")
		}
		c := validConfig(t)
		c.Gossip.Secrets, c.API.Token = nil, ""
		c.Gossip.SecretFile, c.API.TokenFile, c.Admin.PasswordFile = "/dev/zero", "/dev/zero", "/dev/zero"
		c.SMTP.Password, c.SMTP.PasswordFile = "", "/dev/zero"
		_, err1 := c.Secrets()
		_, err2 := c.APIToken()
		_, err3 := c.AdminPassword()
		_, err4 := c.SMTPPassword()
		for i, err := range []error{err1, err2, err3, err4} {
			if err == nil || !strings.Contains(err.Error(), "not a file of secrets") {
				t.Errorf("file %d: %v", i+1, err)
			}
		}
	})

	t.Run("inline list, primary first", func(t *testing.T) {
		c := validConfig(t)
		c.Gossip.Secrets = []string{secret, "b2xk"}
		if got, _ := c.Secrets(); got != secret+"\nb2xk\n" {
			t.Errorf("Secrets() = %q", got)
		}
	})

	t.Run("USSYNC_SECRET replaces the file", func(t *testing.T) {
		c := validConfig(t)
		c.Gossip.Secrets = nil
		c.Gossip.SecretFile = "/nonexistent"
		if err := c.ApplyEnv([]string{"USSYNC_SECRET= " + secret + "\n", "USSYNC_API_TOKEN=" + token}, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Secrets(); err != nil || got != secret+"\n" {
			t.Errorf("Secrets() = %q, %v", got, err)
		}
		if got, err := c.APIToken(); err != nil || got != token {
			t.Errorf("APIToken() = %q, %v", got, err)
		}
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	})

	t.Run("token from file", func(t *testing.T) {
		c := validConfig(t)
		c.API.Token = ""
		c.API.TokenFile = writeFile(t, "token", "  "+token+"\n")
		if got, err := c.APIToken(); err != nil || got != token {
			t.Errorf("APIToken() = %q, %v", got, err)
		}
	})

	// Every error path must name the problem without the value.
	errCases := map[string]func(c *Config){
		"missing secret file": func(c *Config) { c.Gossip.Secrets = nil; c.Gossip.SecretFile = "/nonexistent/" + "secret" },
		"empty secret file":   func(c *Config) { c.Gossip.Secrets = nil; c.Gossip.SecretFile = writeFile(t, "s", "\n\n") },
		"short token":         func(c *Config) { c.API.Token = "zq9x" },
		"token with space":    func(c *Config) { c.API.Token = token + " " + token },
		"empty token file":    func(c *Config) { c.API.Token = ""; c.API.TokenFile = writeFile(t, "t", " \n") },
		"missing token file":  func(c *Config) { c.API.Token = ""; c.API.TokenFile = "/nonexistent/token" },
		"both token sources":  func(c *Config) { c.API.TokenFile = "/x" },
		"both secret sources": func(c *Config) { c.Gossip.Secrets = []string{secret}; c.Gossip.SecretFile = "/x" },
	}
	for name, mutate := range errCases {
		t.Run(name, func(t *testing.T) {
			c := validConfig(t)
			c.Gossip.Secrets = []string{secret}
			c.API.Token = token
			mutate(&c)
			var msgs []string
			if err := c.Validate(); err != nil {
				msgs = append(msgs, err.Error())
			}
			if _, err := c.Secrets(); err != nil {
				msgs = append(msgs, err.Error())
			}
			if _, err := c.APIToken(); err != nil {
				msgs = append(msgs, err.Error())
			}
			if len(msgs) == 0 {
				t.Fatal("no error")
			}
			for _, m := range msgs {
				if strings.Contains(m, secret[:12]) || strings.Contains(m, "0123456789abcdef") || strings.Contains(m, "zq9x") {
					t.Errorf("error %q holds the secret or token", m)
				}
			}
		})
	}

	t.Run("yaml errors do not quote secrets", func(t *testing.T) {
		_, err := ParseConfig([]byte("gossip:\n  secrets: "+secret+"\napi:\n  token: [x]\n"), DefaultConfig())
		if err == nil || strings.Contains(err.Error(), secret[:7]) {
			t.Errorf("ParseConfig() = %v", err)
		}
	})

	t.Run("String redacts", func(t *testing.T) {
		c := validConfig(t)
		c.Gossip.Secrets = []string{secret}
		c.API.Token = token
		for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), c.LogValue().String()} {
			if strings.Contains(s, secret) || strings.Contains(s, token) {
				t.Errorf("output holds a secret: %s", s)
			}
			if !strings.Contains(s, redacted) {
				t.Errorf("output does not mark the redaction: %s", s)
			}
		}
		if c.Gossip.Secrets[0] != secret || c.API.Token != token {
			t.Error("String changed the config")
		}
	})
}

func TestConfig_ExampleFile(t *testing.T) {
	c, err := LoadConfig(filepath.Join("..", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Node.Name != "site-a" || c.Site.URL != "https://site-a.example/" || c.Gossip.SecretFile == "" || c.API.TokenFile == "" {
		t.Errorf("unexpected example: %s", c)
	}
	c.Gossip.SecretFile = writeFile(t, "secret", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=\n")
	c.API.TokenFile = writeFile(t, "token", "0123456789abcdef0123\n")
	if _, err := c.Secrets(); err != nil {
		t.Error(err)
	}
	if _, err := c.APIToken(); err != nil {
		t.Error(err)
	}

	// The example must set (or show commented out) every key of the format,
	// so it stays the reference as fields are added.
	text, err := os.ReadFile(filepath.Join("..", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range yamlKeys(DefaultConfig()) {
		if !strings.Contains(string(text), " "+key+":") {
			t.Errorf("cluster.yaml does not document %s", key)
		}
	}
}

// yamlKeys lists the second-level keys of the format, e.g. "data_dir"
// (yaml.v3 indents by four spaces).
func yamlKeys(c Config) []string {
	var keys []string
	for _, line := range strings.Split(c.String(), "\n") {
		if !strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "     ") {
			continue
		}
		if k, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "-") {
			keys = append(keys, k)
		}
	}
	if len(keys) < 20 {
		panic(fmt.Sprintf("yamlKeys found %d keys: the format's indentation changed", len(keys)))
	}
	return keys
}

func TestConfig_SMTPAndVerification(t *testing.T) {
	const password = "smtp-Passw0rd-do-not-print"
	withSMTP := func(t *testing.T) Config {
		c := validConfig(t)
		c.SMTP.Host = "smtp.a.example"
		c.SMTP.From = "Site A <no-reply@a.example>"
		c.SMTP.Username = "ussync"
		c.SMTP.Password = password
		if err := c.Validate(); err != nil {
			t.Fatalf("validConfig with smtp: %v", err)
		}
		return c
	}

	t.Run("defaults", func(t *testing.T) {
		c := DefaultConfig()
		if c.SMTP.Enabled() || c.SMTP.Port != 587 || c.SMTP.StartTLS != StartTLSMandatory || c.SMTP.Auth != SMTPAuthPlain ||
			time.Duration(c.SMTP.Timeout) != 10*time.Second {
			t.Errorf("smtp defaults: %+v", c.SMTP)
		}
		v := c.Verification
		if time.Duration(v.CodeTTL) != 15*time.Minute || v.MaxAttempts != 5 || time.Duration(v.ResendInterval) != time.Minute ||
			v.MaxSendsPerHour != 5 || v.Templates != "" {
			t.Errorf("verification defaults: %+v", v)
		}
	})

	t.Run("no host: the other smtp keys are not checked", func(t *testing.T) {
		c := validConfig(t)
		c.SMTP.From = "not an address"
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	})

	tests := []struct {
		field  string
		mutate func(*Config)
	}{
		{"smtp.host", func(c *Config) { c.SMTP.Host = "smtp.a.example:587" }},
		{"smtp.host", func(c *Config) { c.SMTP.Host = "smtp a" }},
		{"smtp.port", func(c *Config) { c.SMTP.Port = 0 }},
		{"smtp.port", func(c *Config) { c.SMTP.Port = 70000 }},
		{"smtp.from", func(c *Config) { c.SMTP.From = "" }},
		{"smtp.from", func(c *Config) { c.SMTP.From = "no-reply" }},
		{"smtp.starttls", func(c *Config) { c.SMTP.StartTLS = "always" }},
		{"smtp.starttls", func(c *Config) { c.SMTP.Port, c.SMTP.StartTLS = 465, StartTLSNone }},
		{"smtp.auth", func(c *Config) { c.SMTP.Auth = "xoauth2" }},
		{"smtp.password and smtp.password_file", func(c *Config) { c.SMTP.PasswordFile = "/x" }},
		{"smtp.username", func(c *Config) { c.SMTP.Username = "" }},
		{"smtp.timeout", func(c *Config) { c.SMTP.Timeout = Duration(time.Millisecond) }},
		{"verification.code_ttl", func(c *Config) { c.Verification.CodeTTL = 0 }},
		{"verification.code_ttl", func(c *Config) { c.Verification.CodeTTL = Duration(48 * time.Hour) }},
		{"verification.max_attempts", func(c *Config) { c.Verification.MaxAttempts = 0 }},
		{"verification.resend_interval", func(c *Config) { c.Verification.ResendInterval = -1 }},
		{"verification.max_sends_per_hour", func(c *Config) { c.Verification.MaxSendsPerHour = 0 }},
	}
	checkRefusals(t, withSMTP, tests, password)

	t.Run("accepts", func(t *testing.T) {
		c := withSMTP(t)
		c.SMTP.Host, c.SMTP.Port, c.SMTP.StartTLS, c.SMTP.Auth = "192.0.2.25", 465, StartTLSMandatory, SMTPAuthAutoDiscover
		c.SMTP.From = "no-reply@a.example"
		c.Verification.ResendInterval = 0
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if !c.SMTP.ImplicitTLS() {
			t.Error("port 465 is not implicit TLS")
		}
	})

	t.Run("password sources", func(t *testing.T) {
		c := withSMTP(t)
		if pw, err := c.SMTPPassword(); err != nil || pw != password {
			t.Errorf("inline: %q, %v", pw, err)
		}
		c.SMTP.Password = ""
		c.SMTP.PasswordFile = writeFile(t, "pw", "from file with spaces \n")
		if pw, err := c.SMTPPassword(); err != nil || pw != "from file with spaces " {
			t.Errorf("file: %q, %v", pw, err)
		}
		if err := c.ApplyEnv([]string{"USSYNC_SMTP_PASSWORD=from-env"}, nil); err != nil {
			t.Fatal(err)
		}
		if pw, err := c.SMTPPassword(); err != nil || pw != "from-env" || c.SMTP.PasswordFile != "" {
			t.Errorf("env: %q, %v", pw, err)
		}
		c.SMTP.Password, c.SMTP.PasswordFile = "", writeFile(t, "empty", "\n")
		if _, err := c.SMTPPassword(); err == nil || !strings.HasPrefix(err.Error(), "smtp.password_file") {
			t.Errorf("empty file: %v", err)
		}
		c.SMTP.PasswordFile = filepath.Join(t.TempDir(), "missing")
		if _, err := c.SMTPPassword(); err == nil || !strings.Contains(err.Error(), "smtp.password_file") {
			t.Errorf("missing file: %v", err)
		}
		c.SMTP.PasswordFile = ""
		if pw, err := c.SMTPPassword(); err != nil || pw != "" {
			t.Errorf("none: %q, %v", pw, err)
		}
	})

	t.Run("the password is redacted", func(t *testing.T) {
		c := withSMTP(t)
		for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v", c, c, c), c.LogValue().String()} {
			if strings.Contains(s, password) {
				t.Errorf("output holds the SMTP password: %s", s)
			}
		}
		if c.SMTP.Password != password {
			t.Error("String changed the config")
		}
	})

	t.Run("from YAML", func(t *testing.T) {
		p := writeFile(t, "c.yaml", `
smtp:
  host: mail.a.example
  port: 25
  from: no-reply@a.example
  starttls: opportunistic
verification:
  code_ttl: 10m
  max_attempts: 3
  resend_interval: 30s
  max_sends_per_hour: 10
  templates: /etc/ussync/templates
`)
		c, err := ReadConfig(p, validConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.SMTP.Host != "mail.a.example" || c.SMTP.Port != 25 || c.SMTP.StartTLS != StartTLSOpportunistic ||
			time.Duration(c.Verification.CodeTTL) != 10*time.Minute || c.Verification.MaxAttempts != 3 ||
			time.Duration(c.Verification.ResendInterval) != 30*time.Second || c.Verification.MaxSendsPerHour != 10 ||
			c.Verification.Templates != "/etc/ussync/templates" {
			t.Errorf("read: %+v %+v", c.SMTP, c.Verification)
		}
		bad := writeFile(t, "bad.yaml", "smtp:\n  port: twenty-five\n")
		if _, err := ReadConfig(bad, validConfig(t)); err == nil || !strings.Contains(err.Error(), "expected a whole number") {
			t.Errorf("a port that is not a number: %v", err)
		}
	})
}

// badConfig is a change that makes a valid config invalid, and the field the
// error must name.
type badConfig = struct {
	field  string
	mutate func(*Config)
}

// checkRefusals applies each change to a fresh valid config (from base) and
// checks that Validate refuses it naming the field, without quoting any of
// the secrets.
func checkRefusals(t *testing.T, base func(*testing.T) Config, tests []badConfig, secrets ...string) {
	t.Helper()
	for _, tt := range tests {
		c := base(t)
		tt.mutate(&c)
		err := c.Validate()
		t.Run(fmt.Sprintf("%s/%v", tt.field, err), func(t *testing.T) {
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %s", tt.field)
			}
			if !strings.HasPrefix(err.Error(), tt.field) {
				t.Errorf("Validate() = %q, want it to start with %q", err, tt.field)
			}
			for _, secret := range secrets {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q holds a secret", err)
				}
			}
		})
	}
}
