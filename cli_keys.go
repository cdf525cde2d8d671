package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
)

// keysCommand is `ussync keys`: the cluster's gossip keyring at run time,
// as Serf's `serf keys` and Consul's `consul keyring`. Each subcommand is
// asked of every live member through the node called, and each member
// answers; --local asks the node called alone (a node that was down during
// a rotation).
func keysCommand() *cli.Command {
	local := &cli.BoolFlag{Name: "local", Usage: "act on the node called alone, not the cluster (a node that was down during a rotation)"}
	asJSON := &cli.BoolFlag{Name: "json", Usage: "print the members' answers as JSON"}
	keyCmd := func(name, args, usage, desc string, action cli.ActionFunc, more ...cli.Flag) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, ArgsUsage: args, Description: desc, OnUsageError: adminUsageError,
			Flags: apiFlags(append([]cli.Flag{local, asJSON}, more...)...), Action: action}
	}
	return &cli.Command{
		Name:  "keys",
		Usage: "list, install, use and remove the cluster's gossip keys on every member, while the nodes run",
		Description: "A rotation, without a restart: 'keys install NEW' (every member holds both\n" +
			"keys), 'keys use NEW' (every member encrypts with it), 'keys remove OLD'.\n" +
			"Each step is asked of every live member and answered by each: the output\n" +
			"lists who did it, who failed, who did not answer and who is down, and the\n" +
			"exit status is 3 when one member did not do it (0 when all did, 1 when the\n" +
			"node called refused or could not be reached, 2 for bad input, and for a\n" +
			"removal of a key no member that answered holds: nothing removed). Every node\n" +
			"keeps its keyring in its data dir: a restart keeps it.\n" +
			"See docs/operations.md, \"Rotating keys and tokens\".",
		HideHelpCommand: true,
		OnUsageError:    adminUsageError,
		Subcommands: []*cli.Command{
			keyCmd("list", "", "list every key the members hold, with how many hold it and which do not",
				"", keysList),
			keyCmd("install", "[KEY | -]", "install KEY (a secret from 'ussync keygen') beside the keys every member holds",
				"KEY is the base64 secret; '-' reads it from stdin, --key-file from a file (an\n"+
					"argument is visible to the machine's other users in the process list).\n"+
					"The key travels to the members encrypted like all gossip.",
				keysInstall, &cli.StringFlag{Name: "key-file", Usage: "read the key from `FILE`"}),
			keyCmd("use", "KEY", "make KEY every member's primary: the key they encrypt with (install it everywhere first)",
				"KEY is the key's fingerprint, as 'ussync keys list' shows it, or the secret.", keysUse),
			keyCmd("remove", "KEY", "remove KEY from every member (never the primary: use another key first)",
				"KEY is the key's fingerprint, as 'ussync keys list' shows it, or the secret.", keysRemove),
		},
	}
}

func keysList(c *cli.Context) error {
	_, cl, err := argsClient(c)
	if err != nil {
		return err
	}
	a, err := cl.Keys(c.Context, c.Bool("local"))
	return keysOutcome(c, a, err)
}

func keysInstall(c *cli.Context) error {
	key, err := keyArg(c)
	if err != nil {
		return err
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	a, err := cl.InstallKey(c.Context, key, c.Bool("local"))
	return keysOutcome(c, a, err)
}

func keysUse(c *cli.Context) error { return keysByFingerprint(c, (*client.Client).UseKey) }

func keysRemove(c *cli.Context) error { return keysByFingerprint(c, (*client.Client).RemoveKey) }

// keysByFingerprint runs a keyring call that names one key (use, remove).
func keysByFingerprint(c *cli.Context, call func(*client.Client, context.Context, string, bool) (client.KeyringAnswer, error)) error {
	a, cl, err := argsClient(c, "KEY")
	if err != nil {
		return err
	}
	fp, err := fingerprintArg(a[0])
	if err != nil {
		return err
	}
	ans, err := call(cl, c.Context, fp, c.Bool("local"))
	return keysOutcome(c, ans, err)
}

// keyArg is the secret `keys install` installs: its argument, stdin for
// "-", or --key-file's content; checked here so that a typo never leaves
// the machine.
func keyArg(c *cli.Context) (string, error) {
	var text string
	switch file := c.String("key-file"); {
	case file != "":
		if _, err := wantArgs(c); err != nil {
			return "", fmt.Errorf("--key-file and a KEY argument: give one; run 'ussync keys install --help'")
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read the key: %w", err)
		}
		text = string(b)
	default:
		a, err := wantArgs(c, "KEY")
		if err != nil {
			return "", err
		}
		text = a[0]
		if text == "-" {
			r := c.App.Reader
			if r == nil {
				r = os.Stdin
			}
			b, err := io.ReadAll(io.LimitReader(r, 4096))
			if err != nil {
				return "", fmt.Errorf("read the key from stdin: %w", err)
			}
			text = string(b)
		}
	}
	text = strings.TrimSpace(text)
	if _, err := crypto.ParseSecret(text); err != nil {
		return "", fmt.Errorf("the key is not a cluster secret: %v (make one with 'ussync keygen')", err)
	}
	return text, nil
}

// fingerprintArg reads the KEY of `keys use` and `keys remove`: a
// fingerprint (16 hex characters, "secret:" prefix allowed, as status and
// list show it) or the secret itself.
func fingerprintArg(s string) (string, error) {
	s = strings.TrimSpace(s)
	if sec, err := crypto.ParseSecret(s); err == nil {
		return sec.Fingerprint(), nil
	}
	fp := strings.TrimPrefix(strings.ToLower(s), "secret:")
	if len(fp) != 16 || strings.Trim(fp, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q is neither a key fingerprint (16 hex characters, as 'ussync keys list' shows) nor a cluster secret", s)
	}
	return fp, nil
}

// keysOutcome prints a keyring answer (a table, or JSON) and turns it into
// the command's exit: 1 when the node called refused or was not reached,
// exitPartial when not every member did it.
func keysOutcome(c *cli.Context, a client.KeyringAnswer, err error) error {
	if err != nil {
		return apiErr(err)
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, a); err != nil {
			return err
		}
	} else if err := printKeyring(c.App.Writer, a); err != nil {
		return err
	}
	if removedNowhere(a) {
		// As rm without -f, and unlike Serf's and Consul's keyring
		// -remove (which report success): a fingerprint that names no key
		// is most likely a typo, and the key meant is still installed.
		msg := fmt.Sprintf("key %s is held by none of the members that answered: nothing removed (a mistyped fingerprint? 'ussync keys list' shows the keys held)", a.Fingerprint)
		if !a.Complete {
			msg += "; and " + incomplete(a).Error()
		}
		return &exitErr{code: exitError, err: errors.New(msg)}
	}
	if a.Complete {
		return nil
	}
	return &exitErr{code: exitPartial, err: incomplete(a)}
}

// removedNowhere reports whether a is a removal that every member that
// answered carried out without holding the key: nothing was removed.
func removedNowhere(a client.KeyringAnswer) bool {
	return a.Op == client.KeysRemove && len(a.OK) > 0 && len(a.NotHeld) == len(a.OK) && len(a.Failed) == 0
}

// memberResult is one member's line in a keyring answer.
type memberResult struct {
	name, result string
}

// keyringMembers lists every member a keyring answer names, by name, with
// what it did: "ok", "FAILED: why", "NO ANSWER", "DOWN (not asked)",
// "LEFT (stopped, not asked)", "NOT ASKED: version".
func keyringMembers(a client.KeyringAnswer) []memberResult {
	var out []memberResult
	for _, n := range a.OK {
		res := "ok"
		if slices.Contains(a.NotHeld, n) {
			res = "ok (did not hold it)"
		}
		out = append(out, memberResult{n, res})
	}
	for n, why := range a.Failed {
		out = append(out, memberResult{n, "FAILED: " + why})
	}
	for _, s := range a.NoAnswer {
		n, why, _ := strings.Cut(s, " (")
		res := "NO ANSWER"
		if why != "" {
			res += " (" + why
		}
		out = append(out, memberResult{n, res})
	}
	for _, n := range a.Down {
		out = append(out, memberResult{n, "DOWN (not asked)"})
	}
	for _, n := range a.Left {
		out = append(out, memberResult{n, "LEFT (stopped, not asked)"})
	}
	for _, s := range a.Unsupported {
		n, v, _ := strings.Cut(s, " (")
		out = append(out, memberResult{n, "NOT ASKED: version " + strings.TrimSuffix(v, ")") + " has no keyring calls"})
	}
	slices.SortFunc(out, func(x, y memberResult) int { return strings.Compare(x.name, y.name) })
	return out
}

// headline is the first line of a keyring answer: what was done, on how
// many of the members.
func headline(a client.KeyringAnswer) string {
	members := len(keyringMembers(a))
	where := fmt.Sprintf("on %d of %d members", len(a.OK), members)
	if a.Local {
		where = "on the node called alone (--local)"
		if len(a.OK) == 0 {
			where = "nowhere: the node called failed"
		}
	}
	switch a.Op {
	case client.KeysInstall:
		return fmt.Sprintf("installed key %s %s", a.Fingerprint, where)
	case client.KeysUse:
		return fmt.Sprintf("key %s is the primary %s", a.Fingerprint, where)
	case client.KeysRemove:
		if removedNowhere(a) {
			return fmt.Sprintf("key %s is held by none of the %d members that answered: nothing removed", a.Fingerprint, len(a.OK))
		}
		return fmt.Sprintf("removed key %s %s", a.Fingerprint, strings.Replace(where, "on ", "from ", 1))
	}
	if a.Local {
		return "keys held by the node called (--local)"
	}
	s := "s"
	if members == 1 {
		s = ""
	}
	return fmt.Sprintf("keys held by %d member%s: %d answered", members, s, len(a.OK))
}

// printKeyring writes a keyring answer for people: a headline, every member
// with what it did, and every key with how many of the members that
// answered hold it, where it is the primary and where it is missing.
func printKeyring(w io.Writer, a client.KeyringAnswer) error {
	tw := newTable(w)
	fmt.Fprintln(tw, headline(a))
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "MEMBER\tRESULT")
	for _, m := range keyringMembers(a) {
		fmt.Fprintf(tw, "%s\t%s\n", m.name, m.result)
	}
	fmt.Fprintln(tw)
	if len(a.Keys) == 0 {
		fmt.Fprintln(tw, "no keys: no member answered with its keys")
		return tw.Flush()
	}
	fmt.Fprintln(tw, "KEY\tHELD BY\tPRIMARY ON\tMISSING ON")
	for _, k := range a.Keys {
		primary, missing := strings.Join(k.PrimaryOn, ","), strings.Join(k.MissingOn, ",")
		if len(k.PrimaryOn) == len(a.OK) {
			primary = "all"
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\n", k.Fingerprint, k.Members, len(a.OK), dash(primary), dash(missing))
	}
	return tw.Flush()
}

// incomplete says, in one line, which members did not do a keyring
// operation and what to do about it.
func incomplete(a client.KeyringAnswer) error {
	var who []string
	if n := len(a.Failed); n > 0 {
		names := make([]string, 0, n)
		for name := range a.Failed {
			names = append(names, name)
		}
		slices.Sort(names)
		who = append(who, "failed on "+strings.Join(names, ","))
	}
	names := func(list []string) string {
		out := make([]string, len(list))
		for i, s := range list {
			out[i], _, _ = strings.Cut(s, " (")
		}
		return strings.Join(out, ",")
	}
	if len(a.NoAnswer) > 0 {
		who = append(who, "no answer from "+names(a.NoAnswer))
	}
	if len(a.Down) > 0 {
		who = append(who, "down: "+names(a.Down))
	}
	if len(a.Left) > 0 {
		who = append(who, "left: "+names(a.Left))
	}
	if len(a.Unsupported) > 0 {
		who = append(who, "too old to ask: "+names(a.Unsupported))
	}
	if len(who) == 0 {
		return errors.New("not done on every member")
	}
	what := "keys " + a.Op
	return fmt.Errorf("%s not done on every member (%s): run it again (it is safe); a member that was down gets the keys on its own node with 'ussync keys install --local' and 'keys use --local' (docs/operations.md, \"Rotating keys and tokens\")",
		what, strings.Join(who, "; "))
}
