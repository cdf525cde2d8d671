package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayout_ThirdPartyBehindOneDoor checks DESIGN.md's dependency rules:
// only gossip imports memberlist, only session imports badger, only main
// imports urfave/cli, and session and crypto are leaves.
func TestLayout_ThirdPartyBehindOneDoor(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/ussync/ussync"
	owner := map[string]string{
		"github.com/hashicorp/memberlist": mod + "/gossip",
		"github.com/dgraph-io/badger/v4":  mod + "/session",
		"github.com/urfave/cli/v2":        mod,
	}
	allowedInternal := map[string][]string{
		mod + "/session": nil,
		mod + "/crypto":  nil,
		mod + "/gossip":  {mod + "/session"},
		mod + "/node":    {mod + "/session", mod + "/crypto", mod + "/gossip", mod + "/client"},
		mod + "/client":  nil,
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		for _, imp := range imports {
			for lib, o := range owner {
				if (imp == lib || strings.HasPrefix(imp, lib+"/")) && pkg != o {
					t.Errorf("%s imports %s; only %s may", pkg, imp, o)
				}
			}
			if allowed, ok := allowedInternal[pkg]; ok && strings.HasPrefix(imp, mod+"/") {
				found := false
				for _, a := range allowed {
					found = found || imp == a
				}
				if !found {
					t.Errorf("%s imports %s, against the one-way dependency rule", pkg, imp)
				}
			}
		}
	}
}
