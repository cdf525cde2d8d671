package node

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestEnv_TwinsAreTheFileKeys: the twins are exactly the keys the YAML of a
// Config has (found by marshalling it, not by the code under test), each
// named USSYNC_SECTION_KEY.
func TestEnv_TwinsAreTheFileKeys(t *testing.T) {
	b, err := yaml.Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var want []string
	root := doc.Content[0]
	for i := 0; i < len(root.Content); i += 2 {
		section := root.Content[i].Value
		keys := root.Content[i+1]
		for j := 0; j < len(keys.Content); j += 2 {
			want = append(want, "USSYNC_"+strings.ToUpper(section)+"_"+strings.ToUpper(keys.Content[j].Value)+" "+section+"."+keys.Content[j].Value)
		}
	}
	var got []string
	for _, v := range EnvVars() {
		got = append(got, v.Name+" "+v.Key)
	}
	if !slices.Equal(got, want) {
		t.Errorf("twins:\n%s\nwant the file's keys:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, name := range []string{"USSYNC_API_TOKEN_FILE", "USSYNC_LOG_FORMAT", "USSYNC_SITE_ON_UNKNOWN_USER", "USSYNC_SMTP_PASSWORD"} {
		if _, ok := twinNamed(name); !ok {
			t.Errorf("no twin %s", name)
		}
	}
}

// TestEnv_EveryKeyHasATwin sets every key from the environment, with a
// value of its type that differs from the default, and checks the field.
func TestEnv_EveryKeyHasATwin(t *testing.T) {
	var environ []string
	want := map[string]any{}
	for _, v := range EnvVars() {
		var raw string
		var val any
		switch {
		case v.kind == durationType:
			raw, val = "4242s", Duration(4242*time.Second)
		case v.kind == listType:
			raw, val = "a1, b2 c3", []string{"a1", "b2", "c3"}
		case v.kind.Kind() == reflect.String:
			raw, val = " v-"+v.Key+" ", "v-"+v.Key
		case v.kind.Kind() == reflect.Bool:
			def := reflect.ValueOf(DefaultConfig()).FieldByIndex(v.index).Bool()
			raw, val = fmt.Sprint(!def), !def
		case v.kind.Kind() == reflect.Int:
			raw, val = "4242", 4242
		default:
			t.Fatalf("%s: a key of type %s the test does not know", v.Key, v.kind)
		}
		if v.alt != "" && strings.Contains(v.Key, "file") {
			continue // set below: a key and its alternative exclude each other
		}
		environ = append(environ, v.Name+"="+raw)
		want[v.Key] = val
	}
	c := DefaultConfig()
	if err := c.ApplyEnv(environ, nil); err != nil {
		t.Fatal(err)
	}
	rv := reflect.ValueOf(c)
	for _, v := range EnvVars() {
		w, ok := want[v.Key]
		if !ok {
			continue
		}
		if got := rv.FieldByIndex(v.index).Interface(); !reflect.DeepEqual(got, w) {
			t.Errorf("%s=… set %s to %#v, want %#v", v.Name, v.Key, got, w)
		}
	}
	// The alternatives: the file key set from the environment clears the
	// inline one, and the other way round.
	c = DefaultConfig()
	c.API.Token, c.Gossip.Secrets, c.SMTP.Password = "inline-token-123456", []string{"s"}, "pw"
	if err := c.ApplyEnv([]string{"USSYNC_API_TOKEN_FILE=/run/t", "USSYNC_GOSSIP_SECRET_FILE=/run/s", "USSYNC_SMTP_PASSWORD_FILE=/run/p"}, nil); err != nil {
		t.Fatal(err)
	}
	if c.API.Token != "" || c.API.TokenFile != "/run/t" || c.Gossip.Secrets != nil || c.Gossip.SecretFile != "/run/s" || c.SMTP.Password != "" || c.SMTP.PasswordFile != "/run/p" {
		t.Errorf("file twins: %+v %+v %+v", c.API, c.Gossip, c.SMTP)
	}
	if err := c.ApplyEnv([]string{"USSYNC_API_TOKEN=abcdefghijklmnopq"}, nil); err != nil || c.API.TokenFile != "" || c.API.Token != "abcdefghijklmnopq" {
		t.Errorf("token twin: %+v %v", c.API, err)
	}
}

func TestEnv_Errors(t *testing.T) {
	allowed := func(name string) bool { return name == "USSYNC_CONFIG" }
	tests := []struct {
		name    string
		environ []string
		want    string // in the error; "" for none
		notIn   string // must not be in the error
	}{
		{"unknown, with a suggestion", []string{"USSYNC_LOG_FROMAT=json"}, "unknown environment variable USSYNC_LOG_FROMAT (did you mean USSYNC_LOG_FORMAT?)", ""},
		{"unknown, far from any twin", []string{"USSYNC_COLOUR=blue"}, "unknown environment variable USSYNC_COLOUR;", "did you mean"},
		{"every unknown is named", []string{"USSYNC_B=1", "USSYNC_A=1"}, "variable USSYNC_A; unknown environment variable USSYNC_B;", ""},
		{"allowed by the caller", []string{"USSYNC_CONFIG=/x.yaml"}, "", ""},
		{"other variables are not ours", []string{"HOME=/root", "ussync_lower=1"}, "", ""},
		{"empty is unset", []string{"USSYNC_SYNC_BIND_IP="}, "", ""},
		{"not a bool", []string{"USSYNC_SYNC_BIND_IP=maybe"}, `USSYNC_SYNC_BIND_IP (sync.bind_ip): "maybe" is not true or false`, ""},
		{"not a number", []string{"USSYNC_SMTP_PORT=587x"}, "is not a whole number", ""},
		{"not a duration", []string{"USSYNC_SESSION_TTL=14"}, "USSYNC_SESSION_TTL (session.ttl): \"14\" is not a duration", ""},
		{"both of a pair", []string{"USSYNC_API_TOKEN=abcdefghijklmnopq", "USSYNC_API_TOKEN_FILE=/t"}, "are both set; keep one", "abcdefghijklmnopq"},
		{"the secret alias and its twin", []string{"USSYNC_SECRET=a", "USSYNC_GOSSIP_SECRETS=b"}, "USSYNC_SECRET and USSYNC_GOSSIP_SECRETS are both set", ""},
		{"the secret alias and the file", []string{"USSYNC_SECRET=topsecretvalue", "USSYNC_GOSSIP_SECRET_FILE=/s"}, "USSYNC_GOSSIP_SECRET_FILE and USSYNC_SECRET are both set", "topsecretvalue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			err := c.ApplyEnv(tt.environ, allowed)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if tt.notIn != "" && strings.Contains(err.Error(), tt.notIn) {
				t.Errorf("error %q holds %q", err, tt.notIn)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of several lines: %q", err)
			}
		})
	}
}

// TestEnv_OrderFileThenEnv: a variable overrides the file, a key only the
// file sets keeps the file's value, the secret alias fills gossip.secrets.
func TestEnv_OrderFileThenEnv(t *testing.T) {
	c, err := ParseConfig([]byte("log:\n  level: debug\n  format: json\nsync:\n  modes: [chain]\n"), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyEnv([]string{"USSYNC_LOG_LEVEL=warn", "USSYNC_SYNC_MODES=lazy,chain", "USSYNC_SECRET=one\ntwo three"}, nil); err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "warn" || c.Log.Format != "json" || !slices.Equal(c.Sync.Modes, []string{"lazy", "chain"}) ||
		!slices.Equal(c.Gossip.Secrets, []string{"one", "two", "three"}) {
		t.Errorf("got %+v %+v %v", c.Log, c.Sync.Modes, len(c.Gossip.Secrets))
	}
}
