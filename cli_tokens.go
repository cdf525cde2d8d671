package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// tokensCommand is `ussync tokens`: the node's API tokens, one per site
// backend or tool, made and revoked while the node runs.
func tokensCommand() *cli.Command {
	return &cli.Command{
		Name:  "tokens",
		Usage: "list, create and revoke a node's API tokens, through its private API",
		Description: "Each site backend or tool gets its own named token; changes are recorded\n" +
			"with the name of the token that made them. A token made here works at once\n" +
			"and survives restarts (the node keeps its hash); revoking it takes effect at\n" +
			"once. The configuration's token (api.token_file) is named \"config\" and is\n" +
			"changed in the configuration, then reloaded (SIGHUP).",
		HideHelpCommand: true,
		OnUsageError:    adminUsageError,
		Subcommands: []*cli.Command{
			{
				Name:         "list",
				Usage:        "list the tokens: name, source, fingerprint, creation, last use",
				OnUsageError: adminUsageError,
				Flags:        apiFlags(&cli.BoolFlag{Name: "json", Usage: "print the tokens as JSON"}),
				Action:       tokensList,
			},
			adminCommand("create", "NAME", "make a new token named NAME and print it, this once", tokensCreate),
			adminCommand("revoke", "NAME", "revoke the token named NAME: it authorizes nothing from now on", tokensRevoke),
		},
	}
}

func tokensList(c *cli.Context) error {
	_, cl, err := argsClient(c)
	if err != nil {
		return err
	}
	list, err := cl.Tokens(c.Context)
	if err != nil {
		return apiErr(err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, list)
	}
	tw := newTable(c.App.Writer)
	printTokens(tw, list)
	return tw.Flush()
}

func tokensCreate(c *cli.Context) error {
	a, cl, err := argsClient(c, "NAME")
	if err != nil {
		return err
	}
	nt, err := cl.CreateToken(c.Context, a[0])
	if err != nil {
		return apiErr(err)
	}
	// The token alone on stdout, so that a script can take it:
	//   ussync tokens create wordpress > /etc/ussync/wordpress-token
	fmt.Fprintln(c.App.Writer, nt.Secret)
	fmt.Fprintf(c.App.ErrWriter, "made token %q (fingerprint %s): store it now, the node keeps only its hash\n", nt.Token.Name, nt.Token.Fingerprint)
	return nil
}

func tokensRevoke(c *cli.Context) error {
	a, cl, err := argsClient(c, "NAME")
	if err != nil {
		return err
	}
	t, err := cl.RevokeToken(c.Context, a[0])
	if err != nil {
		return apiErr(err)
	}
	_, err = fmt.Fprintf(c.App.Writer, "revoked token %q (fingerprint %s)\n", t.Name, t.Fingerprint)
	return err
}
