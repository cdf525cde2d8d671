package node

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The environment twins of the configuration: every key of cluster.yaml has
// one, USSYNC_<SECTION>_<KEY> in upper case (api.token_file is
// USSYNC_API_TOKEN_FILE), generated from Config's yaml tags, never listed by
// hand. An unknown USSYNC_* variable is an error, like an unknown key.

// EnvPrefix starts the name of every environment variable ussync reads.
const EnvPrefix = "USSYNC_"

// envSecretAlias is the one variable that is not a key's twin yet sets a
// key: USSYNC_SECRET, the cluster secrets separated by white space (the
// form `ussync keygen` output takes in a shell), kept from before the twins
// existed. It sets gossip.secrets like USSYNC_GOSSIP_SECRETS.
const envSecretAlias = EnvPrefix + "SECRET"

// EnvVar is one key of cluster.yaml and its environment twin.
type EnvVar struct {
	// Name is the variable, e.g. "USSYNC_API_TOKEN_FILE".
	Name string
	// Key is the key it sets, e.g. "api.token_file".
	Key string
	// Secret is set for a key whose value is a secret (gossip.secrets,
	// api.token, smtp.password): its value is never quoted in an error.
	Secret bool
	// Live is set for a key whose new value a running node applies on
	// SIGHUP (Node.Reload); the others need a restart.
	Live bool

	kind  reflect.Type // the field's type
	index []int        // the field's index path in Config
	alt   string       // the key it excludes (token/token_file), or ""
}

// keyOpts are the options of a field's `ussync` tag: "secret" (its value
// is a secret), "live" (SIGHUP applies it), "alt=KEY" (setting it from the
// environment clears that other key of its section, which may not be set
// beside it: token and token_file).
type keyOpts struct {
	secret, live bool
	alt          string
}

func parseKeyOpts(tag string) keyOpts {
	var o keyOpts
	for opt := range strings.SplitSeq(tag, ",") {
		switch {
		case opt == "secret":
			o.secret = true
		case opt == "live":
			o.live = true
		case strings.HasPrefix(opt, "alt="):
			o.alt = strings.TrimPrefix(opt, "alt=")
		}
	}
	return o
}

// yamlName is the key of a struct field in cluster.yaml, or "" for a field
// that is not in the file.
func yamlName(f reflect.StructField) string {
	name := strings.Split(f.Tag.Get("yaml"), ",")[0]
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

// envVars is every key of Config with its twin, in the order of the file.
var envVars = func() []EnvVar {
	var out []EnvVar
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sf := ct.Field(i)
		section := yamlName(sf)
		if section == "" || sf.Type.Kind() != reflect.Struct {
			continue
		}
		for j := range sf.Type.NumField() {
			kf := sf.Type.Field(j)
			key := yamlName(kf)
			if key == "" {
				continue
			}
			o := parseKeyOpts(kf.Tag.Get("ussync"))
			v := EnvVar{
				Name:   EnvPrefix + strings.ToUpper(section+"_"+key),
				Key:    section + "." + key,
				Secret: o.secret,
				Live:   o.live,
				kind:   kf.Type,
				index:  []int{i, j},
			}
			if o.alt != "" {
				v.alt = section + "." + o.alt
			}
			out = append(out, v)
		}
	}
	return out
}()

// EnvVars lists every key of cluster.yaml with its environment twin, in
// the order of the file. The slice is the caller's.
func EnvVars() []EnvVar { return slices.Clone(envVars) }

// envVarOf returns the twin of a key ("api.token"), or false.
func envVarOf(key string) (EnvVar, bool) {
	for _, v := range envVars {
		if v.Key == key {
			return v, true
		}
	}
	return EnvVar{}, false
}

// ApplyEnv applies the USSYNC_* variables of environ (os.Environ's form,
// NAME=VALUE) over c: each key's twin (see EnvVars), and USSYNC_SECRET (the
// cluster secrets, separated by white space; it and USSYNC_GOSSIP_SECRETS
// may not both be set). Values are read as the file's would be: true or
// false, a whole number, a duration with its unit ("90s"), a list
// separated by commas or white space, or a string. Setting one key of a
// pair that excludes the other (api.token and api.token_file,
// gossip.secrets and gossip.secret_file, smtp.password and
// smtp.password_file) clears the other. Variables set to the empty string
// change nothing, as if unset.
//
// A USSYNC_* variable that is neither a twin, USSYNC_SECRET nor accepted
// by allowed (the variables of the command line's flags and the others the
// program reads; nil accepts none) is an error naming it, like an unknown
// key in the file, with the nearest twin when one is close. Errors never
// quote the value of a secret.
func (c *Config) ApplyEnv(environ []string, allowed func(name string) bool) error {
	vals := map[string]string{}
	var unknown []string
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		vals[name] = val
		if _, twin := twinNamed(name); !twin && name != envSecretAlias && (allowed == nil || !allowed(name)) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		msgs := make([]string, len(unknown))
		for i, name := range unknown {
			msgs[i] = fmt.Sprintf("unknown environment variable %s", name)
			if near := nearestTwin(name); near != "" {
				msgs[i] += fmt.Sprintf(" (did you mean %s?)", near)
			}
		}
		return errors.New(strings.Join(msgs, "; ") + "; `ussync agent --help` lists the variables")
	}
	if vals[envSecretAlias] != "" && vals[EnvPrefix+"GOSSIP_SECRETS"] != "" {
		return fmt.Errorf("%s and %sGOSSIP_SECRETS are both set; keep one", envSecretAlias, EnvPrefix)
	}
	// shown is the name a variable was set under, for errors.
	shown := func(name string) string { return name }
	if raw := vals[envSecretAlias]; raw != "" {
		vals[EnvPrefix+"GOSSIP_SECRETS"] = raw
		shown = func(name string) string {
			if name == EnvPrefix+"GOSSIP_SECRETS" {
				return envSecretAlias
			}
			return name
		}
	}
	rv := reflect.ValueOf(c).Elem()
	for _, v := range envVars {
		raw := vals[v.Name]
		if raw == "" {
			continue
		}
		if v.alt != "" && vals[nameOfKey(v.alt)] != "" {
			return fmt.Errorf("%s and %s are both set; keep one", shown(v.Name), shown(nameOfKey(v.alt)))
		}
		if err := setField(rv.FieldByIndex(v.index), raw); err != nil {
			if v.Secret {
				return fmt.Errorf("%s (%s) %s", shown(v.Name), v.Key, err.Error())
			}
			return fmt.Errorf("%s (%s): %q %s", shown(v.Name), v.Key, raw, err.Error())
		}
		if alt, ok := envVarOf(v.alt); ok {
			rv.FieldByIndex(alt.index).SetZero()
		}
	}
	return nil
}

// twinNamed returns the key whose twin is name.
func twinNamed(name string) (EnvVar, bool) {
	for _, v := range envVars {
		if v.Name == name {
			return v, true
		}
	}
	return EnvVar{}, false
}

func nameOfKey(key string) string {
	v, _ := envVarOf(key)
	return v.Name
}

var (
	durationType = reflect.TypeFor[Duration]()
	listType     = reflect.TypeFor[[]string]()
)

// setField parses raw into a config field of one of the file's types. The
// error says what was expected, without the value.
func setField(f reflect.Value, raw string) error {
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return errors.New("is not a duration; write it with a unit, e.g. 60s, 10m, 336h")
		}
		f.SetInt(int64(d))
	case f.Type() == listType:
		f.Set(reflect.ValueOf(strings.FieldsFunc(raw, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
		})))
	case f.Kind() == reflect.String:
		f.SetString(strings.TrimSpace(raw))
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return errors.New("is not true or false")
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return errors.New("is not a whole number")
		}
		f.SetInt(int64(n))
	default:
		// A key of a new type must be taught here: TestEnv_EveryKeyHasATwin
		// sets every key from the environment.
		return fmt.Errorf("has type %s, which the environment cannot set", f.Type())
	}
	return nil
}

// IsEnvVar reports whether name is a key's twin or USSYNC_SECRET: a
// variable the agent reads into its configuration.
func IsEnvVar(name string) bool {
	_, twin := twinNamed(name)
	return twin || name == envSecretAlias
}

// nearestTwin returns the twin closest to name when it is a likely typo
// (an edit distance of at most 3), or "".
func nearestTwin(name string) string { return NearestEnvVar(name) }

// NearestEnvVar is the name, among the keys' twins and others, nearest to
// name by edit distance (at most 3 edits): what a misspelt variable
// probably meant. "" when none is that near.
func NearestEnvVar(name string, others ...string) string {
	best, bestD := "", 4
	try := func(cand string) {
		if d := editDistance(name, cand); d < bestD {
			best, bestD = cand, d
		}
	}
	for _, v := range envVars {
		try(v.Name)
	}
	for _, o := range others {
		try(o)
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
