package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Reading a Config: the YAML file over a base (strict: unknown keys are
// errors that name the key and the line, and never quote a value), then the
// environment (config_env.go).

// LoadConfig reads the YAML file at path over DefaultConfig(). It does not
// validate: apply the environment and flags, then call Validate. Errors
// name the file: one it cannot read (the fs.PathError within), or
// ParseConfig's.
func LoadConfig(path string) (Config, error) {
	return ReadConfig(path, DefaultConfig())
}

// ReadConfig reads the YAML file at path over base: a key the file sets
// replaces base's value, a key it omits (or leaves empty) keeps it. An unknown
// key, a value of the wrong type or a second YAML document is an error naming
// the file and the line. It does not validate.
func ReadConfig(path string, base Config) (Config, error) {
	data, err := readFileMax(path, 1<<20, "not a configuration file")
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
// are one line and never quote a value (it might be a secret): YAML's own,
// with its line (an unknown key names its section, a value of the wrong
// type its field), or a second YAML document.
func ParseConfig(data []byte, base Config) (Config, error) {
	cfg := base
	// Copy the slices: decoding must not write through into base's arrays.
	cfg.Gossip.Join = slices.Clone(base.Gossip.Join)
	cfg.Gossip.Secrets = slices.Clone(base.Gossip.Secrets)
	cfg.Public.TrustedProxies = slices.Clone(base.Public.TrustedProxies)
	cfg.API.AllowedHosts = slices.Clone(base.API.AllowedHosts)
	cfg.Sync.Modes = slices.Clone(base.Sync.Modes)

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) { // empty file or only comments
			return base, nil
		}
		return base, yamlError(err, data)
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
func yamlError(err error, data []byte) error {
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
			key := ""
			if line, err := strconv.Atoi(m[1]); err == nil {
				if k := keyAtLine(data, line); k != "" {
					key = k + ": "
				}
			}
			msgs = append(msgs, fmt.Sprintf("line %s: %sexpected %s, found %s", m[1], key, typeWords(m[3]), tagWords(m[2])))
			continue
		}
		msgs = append(msgs, reQuoted.ReplaceAllString(e, "a value"))
	}
	return errors.New(strings.Join(msgs, "; "))
}

// keyAtLine names the key whose value starts at line of the YAML data,
// "section.key" (or "section" for a section's own value), or "" when none
// does: yaml.v3's type errors give only the line.
func keyAtLine(data []byte, line int) string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return ""
	}
	var find func(n *yaml.Node, prefix string) string
	find = func(n *yaml.Node, prefix string) string {
		if n.Kind != yaml.MappingNode {
			return ""
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := prefix + k.Value
			if v.Line == line && v.Kind != yaml.MappingNode {
				return name
			}
			if got := find(v, name+"."); got != "" {
				return got
			}
			if v.Line == line {
				return name
			}
		}
		return ""
	}
	return find(doc.Content[0], "")
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
