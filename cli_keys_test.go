package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/node/nodetest"
)

// keysOut splits the output of a `ussync keys` command into its headline,
// its member rows (name → result) and its key rows (fields).
func keysOut(t *testing.T, out string) (head string, members map[string]string, keys [][]string) {
	t.Helper()
	parts := strings.Split(strings.TrimRight(out, "\n"), "\n\n")
	if len(parts) != 3 {
		t.Fatalf("want a headline, a member table and a key table, got %q", out)
	}
	head = parts[0]
	members = map[string]string{}
	lines := strings.Split(parts[1], "\n")
	if strings.Join(strings.Fields(lines[0]), " ") != "MEMBER RESULT" {
		t.Fatalf("member table %q", parts[1])
	}
	for _, l := range lines[1:] {
		name, res, _ := strings.Cut(l, " ")
		members[name] = strings.TrimSpace(res)
	}
	if parts[2] == "no keys: no member answered with its keys" {
		return head, members, nil
	}
	return head, members, tableRows(t, parts[2], "KEY HELD BY PRIMARY ON MISSING ON")
}

func fingerprintOf(t *testing.T, secret string) string {
	t.Helper()
	s, err := crypto.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s.Fingerprint()
}

// TestCLI_Keys rotates the key of three real nodes with `ussync keys`
// (install, use, remove), checks the summary and exit status of each, of a
// step every member fails, of the node's own refusal and of bad input;
// then, with one member down, the list says so and exits 3, and the
// --local install works on the node called alone.
func TestCLI_Keys(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	flags := []string{"--api", "http://" + c.Members[0].APIAddr(), "--token", c.Token}
	k1, k2 := c.Secret, newSecret()
	fp1, fp2 := fingerprintOf(t, k1), fingerprintOf(t, k2)
	allOK := map[string]string{"n0": "ok", "n1": "ok", "n2": "ok"}
	sameMembers := func(step string, got map[string]string, want map[string]string) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: members %q, want %q", step, got, want)
			return
		}
		for n, r := range want {
			if !strings.HasPrefix(got[n], r) {
				t.Errorf("%s: %s %q, want %q", step, n, got[n], r)
			}
		}
	}

	code, out, errOut := runCmd(t, []string{"keys", "list"}, flags)
	if code != 0 || errOut != "" {
		t.Fatalf("list: exit %d %q", code, errOut)
	}
	head, members, keys := keysOut(t, out)
	sameMembers("list", members, allOK)
	if head != "keys held by 3 members: 3 answered" || len(keys) != 1 || strings.Join(keys[0], " ") != fp1+" 3/3 all -" {
		t.Errorf("list: %q %q", head, keys)
	}

	// The rotation: install (from a file), use (a fingerprint as status
	// shows it), remove (the secret itself).
	for _, step := range []struct {
		cmd  []string
		args []string
		head string
		keys []string
	}{
		{[]string{"keys", "install", "--key-file", writeFile(t, "k2", k2+"\n")}, nil,
			"installed key " + fp2 + " on 3 of 3 members", []string{fp1 + " 3/3 all -", fp2 + " 3/3 - -"}},
		{[]string{"keys", "use"}, []string{"secret:" + strings.ToUpper(fp2)},
			"key " + fp2 + " is the primary on 3 of 3 members", []string{fp1 + " 3/3 - -", fp2 + " 3/3 all -"}},
		{[]string{"keys", "remove"}, []string{k1},
			"removed key " + fp1 + " from 3 of 3 members", []string{fp2 + " 3/3 all -"}},
	} {
		code, out, errOut := runCmd(t, step.cmd, flags, step.args...)
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d %q\n%s", step.cmd, code, errOut, out)
		}
		head, members, keys := keysOut(t, out)
		sameMembers(step.head, members, allOK)
		var rows []string
		for _, k := range keys {
			rows = append(rows, strings.Join(k, " "))
		}
		if head != step.head || strings.Join(rows, "|") != strings.Join(sortedRows(step.keys, rows), "|") {
			t.Errorf("%v: %q %q, want %q %q", step.cmd, head, rows, step.head, step.keys)
		}
	}

	// A key no member holds: every member fails, the command says which
	// and why, and exits 3.
	code, out, errOut = runCmd(t, []string{"keys", "use"}, flags, fp1)
	if code != exitPartial {
		t.Errorf("use a removed key: exit %d", code)
	}
	head, members, keys = keysOut(t, out)
	if head != "key "+fp1+" is the primary on 0 of 3 members" || keys != nil {
		t.Errorf("use a removed key: %q %q", head, keys)
	}
	sameMembers("use a removed key", members, map[string]string{"n0": "FAILED: key " + fp1 + " is not installed here", "n1": "FAILED:", "n2": "FAILED:"})
	oneErrorLine(t, errOut, "keys use not done on every member (failed on n0,n1,n2)", "--local")

	// A key no member holds (removed already, or a typo): removed
	// nowhere, and said so; exit 2, as bad input.
	code, out, errOut = runCmd(t, []string{"keys", "remove"}, flags, fp1)
	if code != exitError {
		t.Errorf("remove a removed key: exit %d", code)
	}
	head, members, _ = keysOut(t, out)
	if head != "key "+fp1+" is held by none of the 3 members that answered: nothing removed" {
		t.Errorf("remove a removed key: %q", head)
	}
	sameMembers("remove a removed key", members, map[string]string{"n0": "ok (did not hold it)", "n1": "ok (did not hold it)", "n2": "ok (did not hold it)"})
	oneErrorLine(t, errOut, "key "+fp1+" is held by none of the members that answered: nothing removed", "keys list")

	// The node called refuses to remove its primary before asking anyone.
	code, out, errOut = runCmd(t, []string{"keys", "remove"}, flags, fp2)
	if code != exitUnreachable || out != "" {
		t.Errorf("remove the primary: exit %d %q", code, out)
	}
	oneErrorLine(t, errOut, "primary", "keys use")

	// Bad input never leaves the machine.
	for _, bad := range []struct {
		cmd, args []string
		want      string
	}{
		{[]string{"keys", "install"}, []string{"not-a-key"}, "not a cluster secret"},
		{[]string{"keys", "install"}, nil, "want 1 argument"},
		{[]string{"keys", "install", "--key-file", "/nonexistent/key"}, nil, "read the key"},
		{[]string{"keys", "install", "--key-file", writeFile(t, "k", k2)}, []string{k2}, "give one"},
		{[]string{"keys", "use"}, []string{"0123"}, "neither a key fingerprint"},
		{[]string{"keys", "remove"}, nil, "want 1 argument"},
		{[]string{"keys", "list"}, []string{"extra"}, "want 0 argument"},
	} {
		code, out, errOut := runCmd(t, bad.cmd, flags, bad.args...)
		if code != exitError || out != "" {
			t.Errorf("%v %v: exit %d %q", bad.cmd, bad.args, code, out)
		}
		oneErrorLine(t, errOut, bad.want)
	}

	// JSON: the answer as the API gives it.
	code, out, _ = runCmd(t, []string{"keys", "list", "--json"}, flags)
	var a client.KeyringAnswer
	if err := json.Unmarshal([]byte(out), &a); err != nil || code != 0 || !a.Complete || len(a.OK) != 3 || len(a.Keys) != 1 || a.Keys[0].Fingerprint != fp2 {
		t.Errorf("list --json: exit %d %v %+v", code, err, a)
	}

	// n2 is down: the list shows it, and exits 3.
	c.Kill(2)
	c.WaitFor(20*time.Second, "n2 dead on n0", func() bool {
		for _, m := range c.Members[0].Gossip().Members() {
			if m.Name == "n2" {
				return m.State == "dead"
			}
		}
		return false
	})
	code, out, errOut = runCmd(t, []string{"keys", "list"}, flags)
	if code != exitPartial {
		t.Errorf("list with n2 down: exit %d", code)
	}
	head, members, keys = keysOut(t, out)
	sameMembers("list with n2 down", members, map[string]string{"n0": "ok", "n1": "ok", "n2": "DOWN (not asked)"})
	if head != "keys held by 3 members: 2 answered" || len(keys) != 1 || strings.Join(keys[0], " ") != fp2+" 2/2 all -" {
		t.Errorf("list with n2 down: %q %q", head, keys)
	}
	oneErrorLine(t, errOut, "keys list not done on every member (down: n2)")

	// --local: the node called alone; complete, whoever else is down.
	k3 := newSecret()
	code, out, errOut = runCmd(t, []string{"keys", "install", "--local"}, flags, k3)
	if code != 0 || errOut != "" {
		t.Fatalf("install --local: exit %d %q", code, errOut)
	}
	head, members, keys = keysOut(t, out)
	sameMembers("install --local", members, map[string]string{"n0": "ok"})
	if head != "installed key "+fingerprintOf(t, k3)+" on the node called alone (--local)" || len(keys) != 2 {
		t.Errorf("install --local: %q %q", head, keys)
	}
	code, out, errOut = runCmd(t, []string{"keys", "list", "--local"}, flags)
	if code != 0 || errOut != "" {
		t.Fatalf("list --local: exit %d %q", code, errOut)
	}
	head, members, keys = keysOut(t, out)
	sameMembers("list --local", members, map[string]string{"n0": "ok"})
	if head != "keys held by the node called (--local)" || len(keys) != 2 ||
		!slices.Contains([]string{strings.Join(keys[0], " "), strings.Join(keys[1], " ")}, fp2+" 1/1 all -") {
		t.Errorf("list --local: %q %q", head, keys)
	}

	// A removal of a key some members hold: done where it was, the
	// others say they did not hold it (not an error), n2 is still down.
	code, out, errOut = runCmd(t, []string{"keys", "remove"}, flags, k3)
	if code != exitPartial {
		t.Errorf("remove a key n0 alone holds: exit %d %q", code, errOut)
	}
	head, members, _ = keysOut(t, out)
	sameMembers("remove a key n0 alone holds", members, map[string]string{"n0": "ok", "n1": "ok (did not hold it)", "n2": "DOWN (not asked)"})
	if members["n0"] != "ok" || head != "removed key "+fingerprintOf(t, k3)+" from 2 of 3 members" {
		t.Errorf("remove a key n0 alone holds: %q %q", head, members)
	}
}

// sortedRows is want in the order of got where both hold the same rows
// (the table orders keys held by as many members by fingerprint).
func sortedRows(want, got []string) []string {
	if len(want) != len(got) {
		return want
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return want
		}
	}
	return got
}

// TestCLI_KeysSummary: the parts of a keyring answer a running cluster
// does not produce on demand (a member that did not answer, one too old
// to be asked) print as the others do.
func TestCLI_KeysSummary(t *testing.T) {
	a := client.KeyringAnswer{
		Op: client.KeysInstall, Fingerprint: "00112233445566ff",
		Asked:       []string{"a", "b", "c"},
		OK:          []string{"a"},
		Failed:      map[string]string{"b": "disk full"},
		NoAnswer:    []string{"c (unreachable: connection refused)"},
		Down:        []string{"d"},
		Left:        []string{"f"},
		Unsupported: []string{"e (0.1.0)"},
		Keys: []client.KeyringKey{
			{Fingerprint: "00112233445566ff", Members: 1, MissingOn: nil},
			{Fingerprint: "aabbccddeeff0011", Members: 1, PrimaryOn: []string{"a"}},
		},
	}
	var b bytes.Buffer
	if err := printKeyring(&b, a); err != nil {
		t.Fatal(err)
	}
	want := `installed key 00112233445566ff on 1 of 6 members

MEMBER  RESULT
a       ok
b       FAILED: disk full
c       NO ANSWER (unreachable: connection refused)
d       DOWN (not asked)
e       NOT ASKED: version 0.1.0 has no keyring calls
f       LEFT (stopped, not asked)

KEY               HELD BY  PRIMARY ON  MISSING ON
00112233445566ff  1/1      -           -
aabbccddeeff0011  1/1      all         -
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	err := incomplete(a).Error()
	for _, w := range []string{"keys install not done on every member (failed on b; no answer from c; down: d; left: f; too old to ask: e)", "--local"} {
		if !strings.Contains(err, w) {
			t.Errorf("%q lacks %q", err, w)
		}
	}
}
