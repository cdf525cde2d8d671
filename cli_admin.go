package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ussync/ussync/client"
)

// The administration commands: they call a node's private API, like status.

// apiFlags are the flags every command that calls the private API takes.
func apiFlags(more ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "api", Value: "http://127.0.0.1:7947", Usage: "the node's private API `URL` (unix:///PATH for a Unix socket)", EnvVars: env("API_URL")},
		&cli.StringFlag{Name: "token", Usage: "private API `TOKEN` (prefer USSYNC_API_TOKEN or --token-file: flags are visible to other users)", EnvVars: env("API_TOKEN")},
		&cli.StringFlag{Name: "token-file", Usage: "`FILE` holding the private API token, e.g. /etc/ussync/api-token", EnvVars: env("API_TOKEN_FILE")},
	}, more...)
}

// cmdName is the command's whole name, e.g. "sessions list".
func cmdName(c *cli.Context) string {
	var names []string
	for _, x := range c.Lineage() {
		if x.Command != nil && x.Command.Name != "" && x.Command.Name != c.App.Name && (len(names) == 0 || names[0] != x.Command.Name) {
			names = append([]string{x.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}

// adminUsageError is usageError naming the whole command ("sessions list").
func adminUsageError(c *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%v; run 'ussync %s --help'", err, cmdName(c))
}

// wantArgs checks the positional arguments: exactly the names given.
func wantArgs(c *cli.Context, names ...string) ([]string, error) {
	got := c.Args().Slice()
	for _, a := range got {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			return nil, fmt.Errorf("flag %s after the arguments: flags go first (ussync %s [flags] %s)", a, cmdName(c), strings.Join(names, " "))
		}
	}
	if len(got) != len(names) {
		return nil, fmt.Errorf("want %d argument(s), %s, got %d; run 'ussync %s --help'",
			len(names), strings.Join(names, " "), len(got), cmdName(c))
	}
	return got, nil
}

// apiClient is the client of the node the flags name.
func apiClient(c *cli.Context) (*client.Client, error) {
	token, err := apiToken(c)
	if err != nil {
		return nil, err
	}
	return client.New(c.String("api"), token), nil
}

// apiToken is the token of --token (USSYNC_API_TOKEN), else the content of
// --token-file (USSYNC_API_TOKEN_FILE), surrounding white space dropped.
func apiToken(c *cli.Context) (string, error) {
	if token := strings.TrimSpace(c.String("token")); token != "" {
		return token, nil
	}
	path := c.String("token-file")
	if path == "" {
		return "", errors.New("no API token: pass --token-file FILE (e.g. /etc/ussync/api-token) or set USSYNC_API_TOKEN")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the API token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("the API token file %s is empty", path)
	}
	return token, nil
}

// apiErr is the exit of a failed call: the node refused it or could not be
// reached.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	return &exitErr{code: exitUnreachable, err: err}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// adminCommand is a subcommand that takes positional arguments and only the
// API flags.
func adminCommand(name, args, usage string, action cli.ActionFunc) *cli.Command {
	return &cli.Command{Name: name, Usage: usage, ArgsUsage: args, OnUsageError: adminUsageError, Flags: apiFlags(), Action: action}
}

func sessionsCommand() *cli.Command {
	return &cli.Command{
		Name:            "sessions",
		Usage:           "list and revoke sessions, through a node's private API",
		HideHelpCommand: true,
		OnUsageError:    adminUsageError,
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list sessions, newest first, history included unless --active",
				Description: "The table shows the first 16 characters of each session id; --wide or\n" +
					"--json show whole ids, which 'ussync sessions revoke' takes.",
				OnUsageError: adminUsageError,
				Flags: apiFlags(
					&cli.StringFlag{Name: "email", Usage: "only the sessions of `EMAIL`"},
					&cli.StringFlag{Name: "site", Usage: "only the sessions created at node `NAME`"},
					&cli.BoolFlag{Name: "active", Usage: "only the sessions active now"},
					&cli.BoolFlag{Name: "oldest", Usage: "oldest first"},
					&cli.IntFlag{Name: "limit", Value: 50, Usage: "show at most `N` sessions (0: all of them)"},
					&cli.BoolFlag{Name: "wide", Usage: "whole session ids, and the user agent"},
					&cli.BoolFlag{Name: "json", Usage: "print the sessions as JSON"},
				),
				Action: sessionsList,
			},
			adminCommand("revoke", "ID", "end a session on every site, as an administrator (end reason \"admin\")", sessionsRevoke),
		},
	}
}

func sessionsList(c *cli.Context) error {
	cl, limit, err := listSetup(c)
	if err != nil {
		return err
	}
	q := client.SessionQuery{Email: c.String("email"), Site: c.String("site"), All: !c.Bool("active"), Oldest: c.Bool("oldest")}
	var out client.SessionPage
	out.Sessions, out.Next, err = pageAll(limit, func(after string, n int) ([]client.SessionInfo, string, error) {
		q.After, q.Limit = after, n
		p, err := cl.Sessions(c.Context, q)
		return p.Sessions, p.Next, err
	})
	if err != nil {
		return apiErr(err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	return printSessions(c.App.Writer, out, c.Bool("wide"))
}

// argsClient checks a command's positional arguments (see wantArgs) and
// returns them with the command's API client.
func argsClient(c *cli.Context, names ...string) ([]string, *client.Client, error) {
	a, err := wantArgs(c, names...)
	if err != nil {
		return nil, nil, err
	}
	cl, err := apiClient(c)
	return a, cl, err
}

// listSetup checks a list command's arguments and --limit, and returns its
// client and the limit (0: all).
func listSetup(c *cli.Context) (*client.Client, int, error) {
	_, cl, err := argsClient(c)
	if err != nil {
		return nil, 0, err
	}
	limit := c.Int("limit")
	if limit < 0 {
		return nil, 0, fmt.Errorf("--limit must be 0 or more; run 'ussync %s --help'", cmdName(c))
	}
	return cl, limit, nil
}

// pageAll reads pages of up to 500 through fetch, following cursors, until
// they run out or limit items are read (0: no limit). It returns the items
// (never nil) and the cursor after them.
func pageAll[T any](limit int, fetch func(after string, n int) ([]T, string, error)) ([]T, string, error) {
	out, next := []T{}, ""
	for {
		n := 500
		if limit > 0 {
			n = min(500, limit-len(out))
		}
		page, after, err := fetch(next, n)
		if err != nil {
			return nil, "", err
		}
		out, next = append(out, page...), after
		if next == "" || (limit > 0 && len(out) >= limit) {
			return out, next, nil
		}
	}
}

// printSessions writes sessions as an aligned table for people.
func printSessions(w io.Writer, p client.SessionPage, wide bool) error {
	if len(p.Sessions) == 0 {
		_, err := fmt.Fprintln(w, "no sessions")
		return err
	}
	tw := newTable(w)
	head := "ID\tEMAIL\tSITE\tIP\tCREATED\tENDED\tREASON"
	if wide {
		head += "\tUSER AGENT"
	}
	fmt.Fprintln(tw, head)
	for _, s := range p.Sessions {
		id, ended, reason := s.ID, cliTimeOr(s.EndedAt, "-"), s.EndReason
		if !wide && len(id) > 16 {
			id = id[:16]
		}
		if s.Active {
			reason = "active"
		}
		line := strings.Join([]string{id, s.Email, s.Site, dash(s.IP), cliTime(s.CreatedAt), ended, reason}, "\t")
		if wide {
			line += "\t" + dash(s.UserAgent)
		}
		fmt.Fprintln(tw, line)
	}
	if p.Next != "" {
		fmt.Fprintf(tw, "(more: raise --limit, or 0 for all)\n")
	}
	return tw.Flush()
}

func cliTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// cliTimeOr is cliTime of *t, or none when t is nil.
func cliTimeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return cliTime(*t)
}

// newTable returns the writer of an aligned table for people, the one
// layout of every table the commands print: flush it at the end.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sessionsRevoke(c *cli.Context) error {
	a, cl, err := argsClient(c, "ID")
	if err != nil {
		return err
	}
	s, err := cl.RevokeSession(c.Context, a[0])
	if err != nil {
		return apiErr(err)
	}
	if s.EndReason == "admin" {
		_, err = fmt.Fprintf(c.App.Writer, "revoked session %s of %s\n", s.ID, s.Email)
	} else {
		_, err = fmt.Fprintf(c.App.Writer, "session %s of %s had already ended (%s)\n", s.ID, s.Email, s.EndReason)
	}
	return err
}

func usersCommand() *cli.Command {
	return &cli.Command{
		Name:            "users",
		Usage:           "manage users, through a node's private API",
		HideHelpCommand: true,
		OnUsageError:    adminUsageError,
		Subcommands: []*cli.Command{
			{
				Name:         "list",
				Usage:        "list users in e-mail order",
				OnUsageError: adminUsageError,
				Flags: apiFlags(
					&cli.IntFlag{Name: "limit", Value: 50, Usage: "show at most `N` users (0: all of them)"},
					&cli.BoolFlag{Name: "json", Usage: "print the users as JSON"},
				),
				Action: usersList,
			},
			adminCommand("logout-everywhere", "EMAIL", "end every session of a user, on every site", usersLogoutEverywhere),
			adminCommand("verify", "EMAIL", "mark a user's e-mail verified, as an administrator", usersVerify(true)),
			adminCommand("unverify", "EMAIL", "clear a user's verification: their next logins stay on their own site", usersVerify(false)),
			adminCommand("rename", "OLD NEW", "move a user to a new e-mail address; the old one is logged out everywhere", usersRename),
			adminCommand("reset", "EMAIL", "reset a damaged user record on every site: a new generation of it (unverified, logged out everywhere)", usersReset),
		},
	}
}

func usersList(c *cli.Context) error {
	cl, limit, err := listSetup(c)
	if err != nil {
		return err
	}
	var out client.UserPage
	out.Users, out.Next, err = pageAll(limit, func(after string, n int) ([]client.UserInfo, string, error) {
		p, err := cl.Users(c.Context, after, n)
		return p.Users, p.Next, err
	})
	if err != nil {
		return apiErr(err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	if len(out.Users) == 0 {
		_, err := fmt.Fprintln(c.App.Writer, "no users")
		return err
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "EMAIL\tLOGIN\tNAME\tVERIFIED\tCREATED\tMOVED TO")
	for _, u := range out.Users {
		verified, created := "no", cliTimeOr(u.CreatedAt, "-")
		if u.Verified {
			verified = u.VerifiedVia
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Email, dash(u.Login), dash(u.DisplayName), verified, created, dash(u.MovedTo))
	}
	if out.Next != "" {
		fmt.Fprintf(tw, "(more: raise --limit, or 0 for all)\n")
	}
	return tw.Flush()
}

func usersLogoutEverywhere(c *cli.Context) error {
	a, cl, err := argsClient(c, "EMAIL")
	if err != nil {
		return err
	}
	n, err := cl.LogoutEverywhere(c.Context, a[0])
	if err != nil {
		return apiErr(err)
	}
	_, err = fmt.Fprintf(c.App.Writer, "logged %s out everywhere: %d active session(s) ended\n", a[0], n)
	return err
}

// usersVerify sets (ok) or clears a user's verification. The user must
// exist: an administrator's typo creates no one.
func usersVerify(ok bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		a, cl, err := argsClient(c, "EMAIL")
		if err != nil {
			return err
		}
		if _, err := cl.User(c.Context, a[0]); err != nil {
			return apiErr(err)
		}
		var up client.UserUpdate
		if ok {
			via := "admin"
			up.VerifiedVia = &via
		} else {
			up.Verified = &ok
		}
		u, err := cl.PutUser(c.Context, a[0], up)
		if err != nil {
			return apiErr(err)
		}
		if u.Verified {
			_, err = fmt.Fprintf(c.App.Writer, "%s is verified (%s)\n", u.Email, u.VerifiedVia)
		} else {
			_, err = fmt.Fprintf(c.App.Writer, "%s is not verified\n", u.Email)
		}
		return err
	}
}

func usersRename(c *cli.Context) error {
	a, cl, err := argsClient(c, "OLD", "NEW")
	if err != nil {
		return err
	}
	r, err := cl.RenameUser(c.Context, a[0], a[1])
	if err != nil {
		return apiErr(err)
	}
	_, err = fmt.Fprintf(c.App.Writer, "moved %s to %s: %d active session(s) of the old address ended\n", r.MovedFrom, r.User.Email, r.Ended)
	return err
}

func usersReset(c *cli.Context) error {
	a, cl, err := argsClient(c, "EMAIL")
	if err != nil {
		return err
	}
	r, err := cl.ResetUser(c.Context, a[0])
	if err != nil {
		return apiErr(err)
	}
	_, err = fmt.Fprintf(c.App.Writer, "reset %s on every site: %d active session(s) ended; the address is unverified until proved again\n", r.User.Email, r.Ended)
	return err
}

func sitesCommand() *cli.Command {
	return &cli.Command{
		Name:            "sites",
		Usage:           "list the sites, revoke one (a compromised site), take a revocation back",
		HideHelpCommand: true,
		OnUsageError:    adminUsageError,
		Subcommands: []*cli.Command{
			{
				Name:         "list",
				Usage:        "list the sites the node knows: the members and the revoked sites",
				OnUsageError: adminUsageError,
				Flags:        apiFlags(&cli.BoolFlag{Name: "json", Usage: "print the sites as JSON"}),
				Action:       sitesList,
			},
			{
				Name:      "revoke",
				Usage:     "revoke a site on every node: its sessions end, its tickets and its URL are refused, its node changes nothing",
				ArgsUsage: "NAME",
				Description: "Like Serf's force-leave plus a ban, for a site whose backend or API token is\n" +
					"compromised. Run it on another node: a revoked node refuses every change,\n" +
					"its own un-revocation included. It does not contain a holder of the cluster\n" +
					"secret: rotate the secret for that.",
				OnUsageError: adminUsageError,
				Flags:        apiFlags(&cli.BoolFlag{Name: "force", Usage: "revoke a name the node knows nothing of"}),
				Action:       sitesRevoke,
			},
			adminCommand("unrevoke", "NAME", "take a site's revocation back: its new logins are active again (what it minted before stays revoked)", sitesUnrevoke),
		},
	}
}

func sitesList(c *cli.Context) error {
	_, cl, err := argsClient(c)
	if err != nil {
		return err
	}
	sites, err := cl.Sites(c.Context)
	if err != nil {
		return apiErr(err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, client.SiteList{Sites: sites})
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "NAME\tSTATE\tSITE\tREVOKED\tSINCE\tBY")
	for _, s := range sites {
		revoked, since := "no", cliTimeOr(s.Since, "-")
		if s.Revoked {
			revoked = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, dash(s.State), dash(s.SiteURL), revoked, since, dash(s.By))
	}
	return tw.Flush()
}

func sitesRevoke(c *cli.Context) error {
	a, cl, err := argsClient(c, "NAME")
	if err != nil {
		return err
	}
	s, err := cl.RevokeSite(c.Context, a[0], c.Bool("force"))
	if err != nil {
		return apiErr(err)
	}
	_, err = fmt.Fprintf(c.App.Writer, "revoked site %s on every node: its sessions end, its tickets and its URL are refused\n", s.Name)
	return err
}

func sitesUnrevoke(c *cli.Context) error {
	a, cl, err := argsClient(c, "NAME")
	if err != nil {
		return err
	}
	s, err := cl.UnrevokeSite(c.Context, a[0])
	if err != nil {
		return apiErr(err)
	}
	_, err = fmt.Fprintf(c.App.Writer, "site %s is not revoked: its new logins are active again (the sessions it minted before stay revoked)\n", s.Name)
	return err
}
