package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ussync/ussync/demo"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run three nodes and three small websites to try ussync in a browser",
		Description: "Starts, in this process, three ussync nodes and three demo sites (a shop, a blog\n" +
			"and a forum) on http://site-a.localhost:PORT/ and the next two ports. Each site\n" +
			"uses its own node's private API and proxies /ussync/ to the node. Everything is\n" +
			"on loopback, in temporary directories removed at exit (Ctrl-C).",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mode", Value: "chain", Usage: "hand-off `MODE`: chain (redirects through every site), iframe (hidden iframes; needs third-party cookies) or lazy (each site asks the others on the first visit)", EnvVars: env("DEMO_MODE")},
			&cli.IntFlag{Name: "port-base", Value: 8081, Usage: "`PORT` of the first site; the others take the next two", EnvVars: env("DEMO_PORT_BASE")},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "`LEVEL` of the nodes' and sites' logs on stderr: debug, info, warn or error"},
		},
		Action: runDemo,
	}
}

func runDemo(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	mode := c.String("mode")
	if mode != "chain" && mode != "iframe" && mode != "lazy" {
		return fmt.Errorf("--mode: %q is not one of chain, iframe, lazy", mode)
	}
	if p := c.Int("port-base"); p < 1 || p > 65533 {
		return fmt.Errorf("--port-base: %d is not a port from 1 to 65533", p)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", c.String("log-level"))
	}
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := demo.Run(ctx, demo.Options{
		Mode:     mode,
		PortBase: c.Int("port-base"),
		Version:  version,
		Logger:   logger,
	})
	if err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	printDemo(c.App.Writer, d)
	<-ctx.Done()
	stop() // a second Ctrl-C kills the process at once
	fmt.Fprintln(c.App.Writer, "stopping: the nodes leave the cluster and their data is removed")
	if err := d.Close(); err != nil {
		return fmt.Errorf("stop demo: %w", err)
	}
	return nil
}

// printDemo tells what to open and what to try.
func printDemo(w io.Writer, d *demo.Demo) {
	titles := []string{"Shop", "Blog", "Forum"}
	fmt.Fprintf(w, "ussync demo: three nodes and three sites, hand-off mode %q\n\n", d.Mode())
	for i, u := range d.Sites() {
		fmt.Fprintf(w, "  %-6s %s\n", titles[i], u)
	}
	emails := make([]string, len(demo.Users))
	for i, u := range demo.Users {
		emails[i] = u.Email
	}
	howto := "Open the three addresses in one browser (Chrome and Firefox resolve *.localhost " +
		"by themselves) and log in on one site as a demo user, without a password: " +
		strings.Join(emails[:len(emails)-1], ", ") + " or " + emails[len(emails)-1] + ". " +
		"Then open the other two: you are logged in there too. In chain mode the browser went " +
		"through them right after the login; in lazy mode each asks the others on your first " +
		"visit; in iframe mode hidden iframes did it, if your browser allows third-party cookies. " +
		"Each page lists the user's sessions on every site. Log out on any site, or log out " +
		"everywhere, and reload the others. Register a new address to see that an unverified " +
		"e-mail stays logged in on its own site only. Other modes: --mode chain|iframe|lazy. " +
		"Ctrl-C stops everything."
	fmt.Fprintf(w, "\n%s\n", wrap(howto, 78))
}

// wrap breaks text into lines of at most width characters, between words.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for _, word := range strings.Fields(text) {
		if n > 0 && n+1+len(word) > width {
			b.WriteByte('\n')
			n = 0
		} else if n > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
