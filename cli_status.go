package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"github.com/ussync/ussync/client"
)

// ussync status: a node's view of the cluster, as tables for people or as
// JSON.

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:         "status",
		Usage:        "show a node's view of the cluster",
		OnUsageError: usageError,
		Flags: apiFlags(
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
		),
		Action: status,
	}
}

func status(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	st, err := cl.Status(c.Context)
	if err != nil {
		return &exitErr{code: exitUnreachable, err: err}
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return printStatus(w, st, colour(w))
}

// printStatus writes st as aligned tables for people.
func printStatus(w io.Writer, st client.Status, painted bool) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "node\t%s\n", st.Node)
	fmt.Fprintf(tw, "site\t%s\n", st.SiteURL)
	fmt.Fprintf(tw, "version\t%s\n", st.Version)
	if st.Profile != "" {
		fmt.Fprintf(tw, "profile\t%s\n", st.Profile)
	}
	if len(st.NotReady) > 0 {
		fmt.Fprintf(tw, "ready\tNO: %s\n", strings.Join(st.NotReady, "; "))
	} else {
		fmt.Fprintf(tw, "ready\tyes\n")
	}
	printHealth(tw, st.Health, painted)
	fmt.Fprintln(tw)
	printMembers(tw, st.Members)
	fmt.Fprintln(tw)
	printFigures(tw, st)
	printTokens(tw, st.Tokens)
	if len(st.Activity) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "ACTIVITY (latest first)")
		fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tSUBJECT")
		for _, e := range st.Activity {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cliTime(e.At), e.Actor, e.Action, dash(e.Subject))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, warn := range st.Warnings {
		if _, err := fmt.Fprintf(w, "\nWARNING: %s\n", warn); err != nil {
			return err
		}
	}
	return nil
}

// printMembers writes the MEMBERS table of status, by name.
func printMembers(tw *tabwriter.Writer, ms []client.MemberStatus) {
	members := slices.Clone(ms)
	slices.SortFunc(members, func(a, b client.MemberStatus) int { return strings.Compare(a.Name, b.Name) })
	alive := 0
	for _, m := range members {
		if m.State == client.MemberAlive {
			alive++
		}
	}
	fmt.Fprintf(tw, "MEMBERS (%d, %d alive)\n", len(members), alive)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tSITE\tVERSION\tCLOCK")
	for _, m := range members {
		state := memberState(m)
		if m.Revoked {
			state += ",revoked"
		}
		clock := "-"
		if m.ClockSkew != nil {
			clock = fmt.Sprintf("%+.3fs", *m.ClockSkew)
			if m.ClockSkewed {
				clock += " (!)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Address, state, m.SiteURL, m.Version, clock)
	}
}

// printFigures writes the store's counts, the keyring, gossip's figures and
// the last reload of status.
func printFigures(tw *tabwriter.Writer, st client.Status) {

	fmt.Fprintf(tw, "users\t%d\n", st.Counts.Users)
	fmt.Fprintf(tw, "sessions\t%d (%d active)\n", st.Counts.Sessions, st.Counts.ActiveSessions)
	var keys []string
	for _, k := range st.Keyring {
		if k.Primary {
			keys = append([]string{k.Fingerprint + " (primary)"}, keys...)
		} else {
			keys = append(keys, k.Fingerprint)
		}
	}
	if len(keys) == 0 {
		keys = []string{"-"}
	}
	fmt.Fprintf(tw, "keys\t%s\n", strings.Join(keys, ", "))
	ae := st.AntiEntropy
	last := ae.LastRound
	if last == "" {
		last = "never"
	}
	fmt.Fprintf(tw, "anti-entropy\t%d rounds, %d buckets repaired, %d records sent, last %s\n",
		ae.Rounds, ae.BucketsRepaired, ae.RecordsSent, last)
	s := st.Sync
	fmt.Fprintf(tw, "sync\t%d deltas sent, %d received, %d applied, %d rebroadcast, %d bad messages\n",
		s.DeltasSent, s.DeltasReceived, s.DeltasApplied, s.Rebroadcasts, s.BadMessages)
	var refused []string
	for _, reason := range slices.Sorted(maps.Keys(st.RecordsRefused)) {
		refused = append(refused, fmt.Sprintf("%d %s", st.RecordsRefused[reason], reason))
	}
	if len(refused) > 0 {
		fmt.Fprintf(tw, "records refused\t%s (max clock offset %gs)\n", strings.Join(refused, ", "), st.MaxOffset)
	}
	if r := st.Reload; r != nil {
		what := "applied " + orNone(r.Applied)
		if r.Error != "" {
			what = "REFUSED, nothing changed: " + r.Error
		}
		fmt.Fprintf(tw, "reload\t%s: %s\n", cliTime(r.At), what)
		if len(r.Restart) > 0 {
			fmt.Fprintf(tw, "needs restart\t%s (changed in the configuration, not in effect)\n", strings.Join(r.Restart, ", "))
		}
	}
}

// printTokens writes the TOKENS table of status and `tokens list`.
func printTokens(tw *tabwriter.Writer, tokens []client.TokenInfo) {
	if len(tokens) == 0 {
		return
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "TOKENS")
	fmt.Fprintln(tw, "NAME\tSOURCE\tFINGERPRINT\tCREATED\tBY\tLAST USED")
	for _, t := range tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Source, t.Fingerprint,
			cliTimeOr(t.CreatedAt, "-"), dash(t.CreatedBy), cliTimeOr(t.LastUsed, "not since start"))
	}
}

// orNone joins a list, or says it is empty.
func orNone(list []string) string {
	if len(list) == 0 {
		return "nothing"
	}
	return strings.Join(list, ", ")
}
