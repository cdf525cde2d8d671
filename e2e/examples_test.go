//go:build unix

package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ussync/ussync/internal/testenv"
)

// TestExamples_PrometheusRules: the example alert rules load in Prometheus
// (promtool check rules) and fire as their unit tests say (promtool test
// rules).
func TestExamples_PrometheusRules(t *testing.T) {
	promtool := testenv.Require(t, testenv.Promtool, "the example Prometheus alert rules")
	dir := filepath.Join(moduleRoot(t), "examples", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "ussync-alerts.yml"},
		{"test", "rules", "ussync-alerts.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
		t.Logf("promtool %v:\n%s", args, out)
	}
}
