package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A node that refuses the backup (a wrong token) is named as the cause,
// not blamed on the backup's contents, and nothing is left behind.
func TestCLI_BackupRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":{"code":"unauthorized","message":"missing or invalid API token"}}`))
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "n.backup")
	code, out, errOut := runCLI(t, "backup", "--api", srv.URL, "--token", "wrong-token-wrong-token", file)
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	oneErrorLine(t, errOut, "401", "invalid API token")
	if strings.Contains(errOut, "not a complete ussync backup") {
		t.Errorf("the refusal is blamed on the backup: %q", errOut)
	}
	for _, p := range []string{file, file + ".partial"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}
