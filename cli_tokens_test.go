package main

import (
	"strings"
	"testing"
)

// TestCLI_Tokens: create, list and revoke tokens with the CLI, reading the
// caller's own token from a file (--token-file), as an operator with
// /etc/ussync/api-token does.
func TestCLI_Tokens(t *testing.T) {
	_, flags, _ := adminNode(t)
	fileFlags := []string{flags[0], flags[1], "--token-file", writeFile(t, "api-token", flags[3]+"\n")}

	code, out, errOut := runCmd(t, []string{"tokens", "create"}, fileFlags, "wordpress")
	secret := strings.TrimSpace(out)
	if code != 0 || len(secret) < 40 || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, `made token "wordpress"`) {
		t.Fatalf("create: exit %d, %q %q", code, out, errOut)
	}
	// The new token lists the tokens itself.
	code, out, errOut = runCmd(t, []string{"tokens", "list"}, []string{flags[0], flags[1], "--token", secret})
	if code != 0 || errOut != "" {
		t.Fatalf("list: exit %d, %q", code, errOut)
	}
	rows := tableRows(t, strings.TrimLeft(out, "\n"), "TOKENS")
	if len(rows) != 3 || strings.Join(rows[0], " ") != "NAME SOURCE FINGERPRINT CREATED BY LAST USED" ||
		rows[1][0] != "config" || rows[2][0] != "wordpress" || rows[2][1] != "api" || rows[2][5] != "config" {
		t.Errorf("list: %q", rows)
	}
	if strings.Contains(out, secret) || strings.Contains(out, flags[3]) {
		t.Error("list shows a token")
	}
	code, out, _ = runCmd(t, []string{"tokens", "create"}, fileFlags, "wordpress")
	if code != 1 || out != "" {
		t.Errorf("create twice: exit %d, %q", code, out)
	}
	code, out, errOut = runCmd(t, []string{"tokens", "revoke"}, fileFlags, "wordpress")
	if code != 0 || !strings.HasPrefix(out, `revoked token "wordpress"`) {
		t.Fatalf("revoke: exit %d, %q %q", code, out, errOut)
	}
	code, _, errOut = runCmd(t, []string{"tokens", "list"}, []string{flags[0], flags[1], "--token", secret})
	if code != 1 {
		t.Errorf("list with the revoked token: exit %d", code)
	}
	oneErrorLine(t, errOut, "unauthorized")
	code, _, errOut = runCmd(t, []string{"tokens", "list"}, []string{flags[0], flags[1], "--token-file", "/nonexistent/token"})
	if code != 2 {
		t.Errorf("a missing token file: exit %d", code)
	}
	oneErrorLine(t, errOut, "read the API token")
}
