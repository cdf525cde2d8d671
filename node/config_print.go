package node

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ussync/ussync/crypto"
)

// Effective renders c as the YAML of cluster.yaml, for `ussync agent
// --print-config`: every key with its value after the file, the
// environment and the flags, and no secret. A secret shows as its
// fingerprint, the form `ussync status` and `ussync keys list` name it by:
// gossip.secrets as "secret:<fingerprint>" each, api.token as
// "token:<fingerprint>" (crypto.TokenHash.Fingerprint); smtp.password as
// "[redacted]" (a password is short enough to guess from a hash). The
// files of secrets (gossip.secret_file, api.token_file) keep their path,
// with a comment naming what the file holds, or why it cannot be read.
// The secret marked primary is the one the node would encrypt with: that
// of the keyring in its data dir (keyring.json, which `ussync keys`
// changes at run time) once it has one, named above the secrets with all
// its keys. Effective reads those files and writes none; it returns an
// error only if the YAML cannot be built.
func (c Config) Effective() (string, error) {
	r := c.Redacted()
	var root yaml.Node
	if err := root.Encode(r); err != nil {
		return "", fmt.Errorf("print config: %w", err)
	}
	primary, ringNote := c.runKeyringNote()
	if s := mapValue(&root, "gossip", "secrets"); s != nil && len(c.Gossip.Secrets) > 0 {
		s.Content = nil
		for i, text := range c.Gossip.Secrets {
			item := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: secretLabel(i, text)}
			if sec, err := crypto.ParseSecret(text); err == nil && sec.Fingerprint() == primary {
				item.LineComment = "primary"
			}
			s.Content = append(s.Content, item)
		}
	}
	if ringNote != "" {
		key := "secrets"
		if len(c.Gossip.Secrets) == 0 {
			key = "secret_file"
		}
		if k := mapKey(&root, "gossip", key); k != nil {
			k.HeadComment = ringNote
		}
	}
	if t := mapValue(&root, "api", "token"); t != nil && c.API.Token != "" {
		t.Value, t.Style = "token:"+crypto.HashToken(c.API.Token).Fingerprint(), 0
	}
	if f := mapValue(&root, "gossip", "secret_file"); f != nil && c.Gossip.SecretFile != "" && len(c.Gossip.Secrets) == 0 {
		f.LineComment = fileSecretsComment(c, primary)
	}
	if f := mapValue(&root, "api", "token_file"); f != nil && c.API.TokenFile != "" && c.API.Token == "" {
		if tok, err := c.APIToken(); err != nil {
			f.LineComment = "unreadable: " + err.Error()
		} else {
			f.LineComment = "token:" + crypto.HashToken(tok).Fingerprint()
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return "", fmt.Errorf("print config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("print config: %w", err)
	}
	return b.String(), nil
}

// secretLabel names the i-th inline secret by its fingerprint, or says it
// does not parse (without quoting it).
func secretLabel(i int, text string) string {
	s, err := crypto.ParseSecret(text)
	if err != nil {
		return fmt.Sprintf("[secret %d does not parse]", i+1)
	}
	return s.String()
}

// runKeyringNote reads the keyring the node would run with, as a start
// makes it (openKeyring, without writing): the data dir's keyring.json,
// which `ussync keys` changes, with the configuration's secrets applied; or
// the secrets alone before the first start. It returns that keyring's
// primary fingerprint, and a note naming its keys when it is not the
// secrets alone (or why it cannot be read). Both "" without secrets.
func (c Config) runKeyringNote() (primary, note string) {
	text, err := c.Secrets()
	if err != nil {
		return "", ""
	}
	config, err := crypto.ParseKeyring(text)
	if err != nil {
		return "", ""
	}
	if c.Node.DataDir == "" {
		return config.Keys()[0].Fingerprint, ""
	}
	path := filepath.Join(c.Node.DataDir, keyringFileName)
	k, _, fresh, err := loadKeyring(c.Node.DataDir, config)
	if err != nil {
		return config.Keys()[0].Fingerprint, fmt.Sprintf("the node's keyring %s cannot be read (%v): the primary below is the configuration's", path, err)
	}
	keys := k.ring.Keys()
	if fresh {
		return keys[0].Fingerprint, ""
	}
	fps := make([]string, len(keys))
	for i, ki := range keys {
		fps[i] = "secret:" + ki.Fingerprint
		if ki.Primary {
			fps[i] += " (primary)"
		}
	}
	return keys[0].Fingerprint, fmt.Sprintf("the node encrypts with its keyring %s (changed by `ussync keys`; the secrets below are applied to it at start), which then holds %s", path, strings.Join(fps, ", "))
}

// mapKey returns the key node at path in a mapping node, or nil.
func mapKey(n *yaml.Node, path ...string) *yaml.Node {
	if len(path) == 0 {
		return nil
	}
	parent := mapValue(n, path[:len(path)-1]...)
	if parent == nil || parent.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(parent.Content); i += 2 {
		if parent.Content[i].Value == path[len(path)-1] {
			return parent.Content[i]
		}
	}
	return nil
}

// fileSecretsComment names the secrets of gossip.secret_file by their
// fingerprints, in the file's order, marking primary (the running
// keyring's: runKeyringNote), or says why the file cannot be read.
func fileSecretsComment(c Config, primary string) string {
	text, err := c.Secrets()
	if err != nil {
		return "unreadable: " + err.Error()
	}
	kr, err := crypto.ParseKeyring(text)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	var fps []string
	for _, k := range kr.Keys() {
		fp := "secret:" + k.Fingerprint
		if k.Fingerprint == primary {
			fp += " (primary)"
		}
		fps = append(fps, fp)
	}
	return strings.Join(fps, ", ")
}

// mapValue returns the value node at path in a mapping node, or nil.
func mapValue(n *yaml.Node, path ...string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}
