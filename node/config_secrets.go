package node

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ussync/ussync/crypto"
)

// maxSecretFile is the most a file holding secrets may hold: a keyring of
// hundreds of keys, a token, a password hash, with room to spare.
const maxSecretFile = 64 << 10

// readSmallFile reads a file that holds a secret, refusing one larger than
// maxSecretFile: a path naming /dev/zero, a log or a disk image by mistake
// is one clear error, not a node reading until memory runs out.
func readSmallFile(path string) ([]byte, error) {
	return readFileMax(path, maxSecretFile, "not a file of secrets")
}

// readFileMax reads at most max bytes of path; a larger file is an error
// saying what it is not.
func readFileMax(path string, max int64, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d KiB: %s", path, max>>10, what)
	}
	return b, nil
}

// The secrets a Config names (read when asked, never kept in errors), and
// its redacted forms for printing and logging.

// SMTPPassword returns the SMTP password: smtp.password (which
// USSYNC_SMTP_PASSWORD fills) if set, else the content of
// smtp.password_file without its trailing newline; "" when neither is set.
// Errors never contain the password.
func (c Config) SMTPPassword() (string, error) {
	if c.SMTP.Password != "" || c.SMTP.PasswordFile == "" {
		return c.SMTP.Password, nil
	}
	b, err := readSmallFile(c.SMTP.PasswordFile)
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
	b, err := readSmallFile(c.Gossip.SecretFile)
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
		b, err := readSmallFile(c.API.TokenFile)
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
	b, err := readSmallFile(c.Admin.PasswordFile)
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
