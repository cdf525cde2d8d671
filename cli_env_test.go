package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/node"
)

// TestRun_PrintConfig: --print-config prints what the agent would run
// with, file then environment then flags, secrets as fingerprints, and
// exits without starting anything.
func TestRun_PrintConfig(t *testing.T) {
	runCLI(t) // clear the environment
	const secret = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
	const token = "print-config-token-0123456789"
	s, _ := crypto.ParseSecret(secret)
	conf := writeFile(t, "cluster.yaml", "node:\n  name: from-file\n  data_dir: /var/lib/x\nsite:\n  url: https://file.example/\n"+
		"log:\n  level: debug\n  format: json\napi:\n  listen: 127.0.0.1:1\n")
	tokenFile := writeFile(t, "token", token+"\n")
	t.Setenv("USSYNC_SECRET", secret)
	t.Setenv("USSYNC_API_TOKEN_FILE", tokenFile)
	t.Setenv("USSYNC_LOG_LEVEL", "warn")
	t.Setenv("USSYNC_API_LISTEN", "127.0.0.1:2")
	t.Setenv("USSYNC_SYNC_MODES", "chain lazy")
	var out, errOut bytes.Buffer
	code := run([]string{"ussync", "agent", "--config", conf, "--api", "127.0.0.1:3", "--print-config"}, &out, &errOut)
	if code != 0 || errOut.Len() != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	text := out.String()
	if strings.Contains(text, secret) || strings.Contains(text, token) {
		t.Fatalf("a secret is printed:\n%s", text)
	}
	var got node.Config
	if err := yaml.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not the YAML of a config: %v\n%s", err, text)
	}
	for what, ok := range map[string]bool{
		"the file's name":                   got.Node.Name == "from-file",
		"the file's format":                 got.Log.Format == "json",
		"the environment over the file":     got.Log.Level == "warn",
		"the flag over the environment":     got.API.Listen == "127.0.0.1:3",
		"a list from the environment":       slices.Equal(got.Sync.Modes, []string{"chain", "lazy"}),
		"the secret as its fingerprint":     slices.Equal(got.Gossip.Secrets, []string{"secret:" + s.Fingerprint()}),
		"the token file, not a token":       got.API.TokenFile == tokenFile && got.API.Token == "",
		"a default":                         got.Session.TTL == node.DefaultConfig().Session.TTL,
		"the token file's fingerprint":      strings.Contains(text, "# token:"+crypto.HashToken(token).Fingerprint()),
		"the primary secret marked primary": strings.Contains(text, "secret:"+s.Fingerprint()+" # primary"),
	} {
		if !ok {
			t.Errorf("%s: not printed as expected:\n%s", what, text)
		}
	}

	// An invalid configuration is an error, as the agent's would be.
	code, _, stderr := runCLI(t, "agent", "--print-config", "--site-url", "ftp://x/")
	if code != 2 {
		t.Errorf("exit %d", code)
	}
	oneErrorLine(t, stderr, "site.url")
}

// TestRun_UnknownEnvironment: a misspelt variable stops the agent, with the
// name it probably meant; the variables of flags and of the tests do not.
func TestRun_UnknownEnvironment(t *testing.T) {
	runCLI(t) // clear the environment
	t.Setenv("USSYNC_LOG_FROMAT", "json")
	var out, errOut bytes.Buffer
	if code := run([]string{"ussync", "agent", "--dev", "--print-config"}, &out, &errOut); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	oneErrorLine(t, errOut.String(), "unknown environment variable USSYNC_LOG_FROMAT (did you mean USSYNC_LOG_FORMAT?)")
	os.Unsetenv("USSYNC_LOG_FROMAT")

	t.Setenv("USSYNC_E2E_REQUIRE", "1")    // the tests'
	t.Setenv("USSYNC_API_URL", "http://x") // a flag's (status)
	t.Setenv("USSYNC_PROFILE", "local")    // a flag's (agent)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"ussync", "agent", "--dev", "--print-config"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "profile: local") {
		t.Errorf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
}

// envUse finds the places a USSYNC_* variable is read or set: os.Getenv
// and friends, "NAME=" in an environment, a flag's EnvVars, the testenv
// programs' Var, $NAME and ${NAME in shell, Environment=NAME in a unit.
var envUse = regexp.MustCompile(`(?:Getenv|LookupEnv|Setenv|Unsetenv)\("(USSYNC_[A-Z0-9_]+)"\)` +
	`|"(USSYNC_[A-Z0-9_]+)="` +
	`|\benv\("([A-Z0-9_]+)"\)` +
	`|Var: +"(USSYNC_[A-Z0-9_]+)"` +
	`|\$\{?(USSYNC_[A-Z0-9_]+)` +
	`|Environment=(USSYNC_[A-Z0-9_]+)` +
	`|(?m:^\s*(?:export\s+)?(USSYNC_[A-Z0-9_]+)=)`)

// TestEnv_EveryVariableIsKnown: every USSYNC_* variable the repository
// reads or sets is a key's twin, USSYNC_SECRET, a flag's variable or in
// otherEnv, so the agent accepts an environment the project itself makes.
func TestEnv_EveryVariableIsKnown(t *testing.T) {
	known := allowedEnv(newApp(nil, nil))
	twins := map[string]bool{"USSYNC_SECRET": true}
	for _, v := range node.EnvVars() {
		twins[v.Name] = true
	}
	used := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		ext := filepath.Ext(path)
		if d.IsDir() || !(ext == ".go" || ext == ".sh" || ext == ".service" || filepath.Base(path) == "run") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range envUse.FindAllStringSubmatch(string(b), -1) {
			for i, g := range m[1:] {
				if g == "" {
					continue
				}
				if i == 2 { // env("NAME"): main's flag helper adds the prefix
					g = "USSYNC_" + g
				}
				used[g] = append(used[g], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// .ci/run is skipped with the hidden directories above: read it too.
	if b, err := os.ReadFile(".ci/run"); err == nil {
		for _, m := range envUse.FindAllStringSubmatch(string(b), -1) {
			for _, g := range m[1:] {
				if g != "" {
					used[g] = append(used[g], ".ci/run")
				}
			}
		}
	}
	if len(used) < 10 {
		t.Fatalf("found only %d variables: the scan is broken", len(used))
	}
	for name, where := range used {
		// Not for an agent: this file's misspellings, and the variables
		// internal/testenv's tests hand their own child processes.
		if name == "USSYNC_LOG_FROMAT" || name == "USSYNC_API_TOKNE" || strings.HasPrefix(name, "USSYNC_TESTENV_") {
			continue
		}
		if !twins[name] && !known(name) {
			t.Errorf("%s (used in %v) is neither a config key's twin, a flag's variable nor in otherEnv: the agent would refuse it", name, slices.Compact(where))
		}
	}
}

// TestRun_UnknownEnvironmentWarns: a client command warns on stderr of a
// USSYNC_* variable the program does not know (a misspelt token's
// variable would otherwise be ignored in silence), naming the variable it
// probably meant, and goes on; the variables it knows, the agent's
// included, pass without a word.
func TestRun_UnknownEnvironmentWarns(t *testing.T) {
	const token = "0123456789abcdef"
	srv := statusServer(t, token)
	runCLI(t) // clear the environment
	t.Setenv("USSYNC_API_URL", srv.URL)
	t.Setenv("USSYNC_API_TOKNE", token) // misspelt
	var out, errOut bytes.Buffer
	code := run([]string{"ussync", "status", "--token", token}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "site-a") {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := "ussync: warning: unknown environment variable USSYNC_API_TOKNE, ignored (did you mean USSYNC_API_TOKEN?)\n"; errOut.String() != want {
		t.Errorf("stderr %q, want %q", errOut.String(), want)
	}

	os.Unsetenv("USSYNC_API_TOKNE")
	t.Setenv("USSYNC_API_TOKEN", token)   // a flag's
	t.Setenv("USSYNC_LOG_LEVEL", "debug") // the agent's: a key's twin
	t.Setenv("USSYNC_SECRET", "unused")   // the agent's
	t.Setenv("USSYNC_E2E_REQUIRE", "1")   // the tests'
	out.Reset()
	errOut.Reset()
	if code := run([]string{"ussync", "status"}, &out, &errOut); code != 0 || errOut.Len() != 0 {
		t.Errorf("known variables: exit %d, stderr %q", code, errOut.String())
	}
}

// TestRun_PrintConfigKeyring: once the node has a keyring in its data dir
// (`ussync keys` made another key the primary), --print-config marks that
// keyring's primary, not the configuration's first secret, and names the
// keyring's keys; it reads the keyring file and writes nothing.
func TestRun_PrintConfigKeyring(t *testing.T) {
	runCLI(t) // clear the environment
	k1, _ := crypto.GenerateSecret()
	k2, _ := crypto.GenerateSecret()
	dir := t.TempDir()
	ring := fmt.Sprintf(`{"version":1,"keys":[%q,%q],"config":[%q]}`+"\n", k2.Encode(), k1.Encode(), k1.Fingerprint())
	path := filepath.Join(dir, "keyring.json")
	if err := os.WriteFile(path, []byte(ring), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("USSYNC_SECRET", k1.Encode())
	t.Setenv("USSYNC_API_TOKEN", "print-config-token-0123456789")
	var out, errOut bytes.Buffer
	code := run([]string{"ussync", "agent", "--name", "n1", "--data-dir", dir, "--site-url", "https://a.example/", "--print-config"}, &out, &errOut)
	if code != 0 || errOut.Len() != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	text := out.String()
	if strings.Contains(text, "secret:"+k1.Fingerprint()+" # primary") {
		t.Errorf("the configuration's secret is marked primary, keyring.json's primary is %s:\n%s", k2.Fingerprint(), text)
	}
	if want := "secret:" + k2.Fingerprint() + " (primary), secret:" + k1.Fingerprint(); !strings.Contains(text, want) || !strings.Contains(text, path) {
		t.Errorf("the keyring %s with %q is not named:\n%s", path, want, text)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != ring {
		t.Errorf("keyring.json changed: %v\n%s", err, b)
	}

	// Before the first start (no keyring.json), the secrets are the keyring.
	os.Remove(path)
	out.Reset()
	if code := run([]string{"ussync", "agent", "--name", "n1", "--data-dir", dir, "--site-url", "https://a.example/", "--print-config"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "secret:"+k1.Fingerprint()+" # primary") || strings.Contains(out.String(), "keyring.json") {
		t.Errorf("no keyring yet: exit %d %s\n%s", code, errOut.String(), out.String())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("--print-config made a keyring.json: %v", err)
	}
}
