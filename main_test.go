package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ussync/ussync/client"
)

// TestMain runs this test binary as the ussync program when it is started
// as `<binary> agent ...`: the bench's process newcomer runs
// os.Executable() so, which under go test is this binary (go test itself
// never passes a bare command word).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// runCLI runs the program in-process with a clean USSYNC_* environment.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "USSYNC_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	var out, errOut bytes.Buffer
	code = run(append([]string{"ussync"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// oneErrorLine checks stderr is exactly one "ussync: " line holding want.
func oneErrorLine(t *testing.T, stderr string, want ...string) {
	t.Helper()
	if !strings.HasPrefix(stderr, "ussync: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr is not one error line: %q", stderr)
	}
	for _, bad := range []string{"goroutine", "panic", "USAGE", "Incorrect Usage"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr holds %q: %q", bad, stderr)
		}
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not contain %q", stderr, w)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun_UsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad agent flag", []string{"agent", "--bogus"}, "run 'ussync agent --help'"},
		{"bad global flag", []string{"--bogus"}, "run 'ussync --help'"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"stray argument", []string{"keygen", "extra"}, `unexpected argument "extra"`},
		{"flag without value", []string{"agent", "--config"}, "flag needs an argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			oneErrorLine(t, stderr, tt.want)
			if stdout != "" {
				t.Errorf("stdout: %q", stdout)
			}
		})
	}

	t.Run("bad env value", func(t *testing.T) {
		t.Setenv("USSYNC_DEV", "maybe")
		var out, errOut bytes.Buffer
		if code := run([]string{"ussync", "agent"}, &out, &errOut); code != 2 {
			t.Errorf("exit code %d, want 2", code)
		}
		oneErrorLine(t, errOut.String(), "USSYNC_DEV")
	})
}

func TestRun_AgentConfigErrors(t *testing.T) {
	dir := t.TempDir()
	secret := writeFile(t, "secret", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=\n")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown yaml key", []string{"agent", "--config", writeFile(t, "c.yaml", "node:\n  name: a\n  colour: blue\n")},
			[]string{`unknown key "colour"`, "line 3"}},
		{"invalid value", []string{"agent", "--name", "a", "--site-url", "https://a.example/", "--config", writeFile(t, "c.yaml", "api:\n  listen: foo\n")},
			[]string{`api.listen: "foo" is not host:port`}},
		{"flag overrides file", []string{"agent", "--config", writeFile(t, "c.yaml", "site:\n  url: https://a.example/\n"), "--site-url", "ftp://x/"},
			[]string{"site.url:", "ftp://x/"}},
		{"missing config file", []string{"agent", "--config", filepath.Join(dir, "nope.yaml")},
			[]string{"nope.yaml"}},
		{"missing secret", []string{"agent", "--site-url", "https://a.example/", "--data-dir", dir, "--name", "a"},
			[]string{"no cluster secret", "ussync keygen", "--secret-file"}},
		{"missing token", []string{"agent", "--site-url", "https://a.example/", "--data-dir", dir, "--name", "a", "--secret-file", secret},
			[]string{"no API token", "USSYNC_API_TOKEN"}},
		{"bad profile flag", []string{"agent", "--site-url", "https://a.example/", "--name", "a", "--profile", "moon"},
			[]string{"node.profile", "moon"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			oneErrorLine(t, stderr, tt.want...)
		})
	}

	t.Run("USSYNC_SECRET is never echoed", func(t *testing.T) {
		runCLI(t) // clear the environment
		const s = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
		t.Setenv("USSYNC_SECRET", s)
		t.Setenv("USSYNC_API_TOKEN", "short")
		var out, errOut bytes.Buffer
		code := run([]string{"ussync", "agent", "--site-url", "https://a.example/", "--name", "a", "--data-dir", dir}, &out, &errOut)
		if code != 2 {
			t.Errorf("exit code %d, want 2", code)
		}
		oneErrorLine(t, errOut.String(), "api.token")
		if strings.Contains(out.String()+errOut.String(), s) || strings.Contains(errOut.String(), `"short"`) {
			t.Errorf("a secret was printed: %q %q", out.String(), errOut.String())
		}
	})
}

func TestRun_Keygen(t *testing.T) {
	code, stdout, stderr := runCLI(t, "keygen")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	line := strings.TrimSuffix(stdout, "\n")
	if len(line) != 44 || line+"\n" != stdout {
		t.Fatalf("keygen printed %q, want 44 base64 characters and a newline", stdout)
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil || len(b) != 32 {
		t.Fatalf("keygen output decodes to %d bytes, %v", len(b), err)
	}
	_, again, _ := runCLI(t, "keygen")
	if again == stdout {
		t.Error("two keygen runs printed the same secret")
	}
}

func TestRun_StatusUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port nobody listens on

	code, stdout, stderr := runCLI(t, "status", "--api", "http://"+addr, "--token", "0123456789abcdef")
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	oneErrorLine(t, stderr, "cannot be reached", addr)
	if stdout != "" {
		t.Errorf("stdout: %q", stdout)
	}
}

func fakeStatus() client.Status {
	skew := 600.25
	return client.Status{
		Node: "site-a", SiteURL: "https://a.example/", Version: "0.1.0-test", Profile: "wan",
		MaxOffset: 5, RecordsRefused: map[string]uint64{"clock_ahead": 3, "invalid": 0, "lifetime": 0},
		Warnings: []string{"member site-b's clock is 600.2 s ahead of this node's"},
		Members: []client.MemberStatus{
			{Name: "site-b", Address: "10.0.0.2:7946", State: "suspect", SiteURL: "https://b.example/", Version: "0.1.0", ClockSkew: &skew, ClockSkewed: true},
			{Name: "site-a", Address: "10.0.0.1:7946", State: "alive", SiteURL: "https://a.example/", Version: "0.1.0-test"},
		},
		Counts:      client.Counts{Users: 3, Sessions: 7, ActiveSessions: 5},
		Keyring:     []client.KeyStatus{{Fingerprint: "old0fp"}, {Fingerprint: "prim4ryfp", Primary: true}},
		AntiEntropy: client.AntiEntropy{Rounds: 12, BucketsRepaired: 2, RecordsSent: 9, LastRound: "2026-01-02T03:04:05Z"},
		Sync:        client.SyncStats{DeltasSent: 4, DeltasReceived: 6, DeltasApplied: 5, Rebroadcasts: 1},
		Tokens:      []client.TokenInfo{{Name: "config", Source: client.TokenConfig, Fingerprint: "a50817b01e71abb5"}},
	}
}

// statusServer serves fakeStatus at /v1/status to the bearer of token. It only
// tests the CLI's formatting; the real endpoint is tested in package node.
func statusServer(t *testing.T, token string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/v1/status" || r.Method != http.MethodGet {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":{"code":"not_found","message":"no such endpoint"}}`))
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":"unauthorized","message":"missing or wrong API token"}}`))
			return
		}
		json.NewEncoder(w).Encode(fakeStatus())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRun_Status(t *testing.T) {
	const token = "0123456789abcdef"
	srv := statusServer(t, token)

	t.Run("table", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "status", "--api", srv.URL, "--token", token)
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		t.Logf("output:\n%s", stdout)
		for _, want := range []string{"site-a", "site-b", "10.0.0.2:7946", "suspect", "https://b.example/",
			"NAME", "ADDRESS", "STATE", "SITE", "VERSION", "0.1.0-test", "prim4ryfp (primary), old0fp",
			"7 (5 active)", "12 rounds", "2026-01-02T03:04:05Z", "4 deltas sent",
			"CLOCK", "+600.250s (!)", "3 clock_ahead, 0 invalid, 0 lifetime (max clock offset 5s)",
			"\nWARNING: member site-b's clock is 600.2 s ahead of this node's\n"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, stdout)
			}
		}
		// The node's figures are one block, before the tables that follow.
		if r, tok := strings.Index(stdout, "records refused"), strings.Index(stdout, "TOKENS"); r < 0 || tok < 0 || r > tok {
			t.Errorf("the records refused line is not with the node's figures, before TOKENS:\n%s", stdout)
		}
		if strings.Index(stdout, "site-a  ") > strings.Index(stdout, "site-b  ") {
			t.Errorf("members not sorted by name:\n%s", stdout)
		}
		// Columns are aligned: the header and each member row start their
		// ADDRESS column at the same offset.
		var col []int
		for _, l := range strings.Split(stdout, "\n") {
			if i := strings.Index(l, "10.0.0."); i > 0 {
				col = append(col, i)
			}
			if i := strings.Index(l, "ADDRESS"); i > 0 {
				col = append(col, i)
			}
		}
		if len(col) != 3 || col[0] != col[1] || col[1] != col[2] {
			t.Errorf("columns not aligned (%v):\n%s", col, stdout)
		}
	})

	t.Run("json", func(t *testing.T) {
		code, stdout, _ := runCLI(t, "status", "--api", srv.URL, "--token", token, "--json")
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		var got client.Status
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, stdout)
		}
		if got.Node != "site-a" || len(got.Members) != 2 || got.Counts.ActiveSessions != 5 {
			t.Errorf("got %+v", got)
		}
	})

	t.Run("token from environment", func(t *testing.T) {
		runCLI(t)
		t.Setenv("USSYNC_API_TOKEN", token)
		t.Setenv("USSYNC_API_URL", srv.URL)
		var out, errOut bytes.Buffer
		if code := run([]string{"ussync", "status"}, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	})

	t.Run("wrong token", func(t *testing.T) {
		code, _, stderr := runCLI(t, "status", "--api", srv.URL, "--token", "wrong-token-wrong-token")
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		oneErrorLine(t, stderr, "401", "missing or wrong API token")
		if strings.Contains(stderr, "wrong-token-wrong-token") {
			t.Errorf("the token was printed: %q", stderr)
		}
	})

	t.Run("no token", func(t *testing.T) {
		code, _, stderr := runCLI(t, "status", "--api", srv.URL)
		if code != 2 {
			t.Errorf("exit code %d, want 2", code)
		}
		oneErrorLine(t, stderr, "no API token")
	})
}
