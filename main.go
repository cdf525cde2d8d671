// Command ussync runs a ussync node (agent), asks one for its view of the
// cluster (status) and makes cluster secrets (keygen). It only parses flags and
// configuration and prints errors; the node lives in package node.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/node"
)

// version is the build's version, set with -ldflags "-X main.version=1.2.3"
// (scripts/release.sh); version.go completes it for unstamped builds.
var version = "0.1.0-dev"

// Exit codes.
const (
	exitOK          = 0
	exitUnreachable = 1 // status: the node cannot be reached or refused the call
	exitError       = 2 // bad flag, bad config, missing secret, failed start
	// exitPartial: a keyring command (`ussync keys`) that not every member
	// carried out: one failed, did not answer, was down or too old to be
	// asked. Its output says which; running it again is safe.
	exitPartial = 3
)

// closeTimeout bounds the graceful shutdown: leave, drain requests, close the store.
const closeTimeout = 10 * time.Second

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// exitErr carries an exit code other than exitError.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// run is the whole program: it returns the exit code instead of exiting, and
// prints at most one error line, prefixed "ussync: ", on stderr.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(args)
	if err == nil {
		return exitOK
	}
	code := exitError
	var ee *exitErr
	if errors.As(err, &ee) {
		code = ee.code
	}
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	fmt.Fprintf(stderr, "ussync: %s\n", msg)
	return code
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "ussync",
		Usage:           "keep users logged in across a family of websites, without a central server",
		Version:         version,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		// Errors are printed once, by run; urfave must neither print nor exit.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		// The agent refuses an unknown USSYNC_* variable; the other
		// commands warn of it (cli_env.go).
		Before: func(c *cli.Context) error {
			if c.Args().First() != "agent" {
				warnUnknownEnv(c.App, os.Environ(), c.App.ErrWriter)
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("unknown command %q; run 'ussync --help'", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{agentCommand(), statusCommand(), keygenCommand(), sessionsCommand(), usersCommand(), tokensCommand(), keysCommand(), sitesCommand(), backupCommand(), restoreCommand(), benchCommand(), demoCommand(), versionCommand()},
	}
}

// usageError turns a flag parsing error into one line pointing at the help.
func usageError(c *cli.Context, err error, isSubcommand bool) error {
	help := "ussync --help"
	if isSubcommand {
		help = "ussync " + c.Command.Name + " --help"
	}
	return fmt.Errorf("%v; run '%s'", err, help)
}

// noArgs refuses positional arguments: a command that takes none would
// otherwise silently ignore a mistyped flag value.
func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("unexpected argument %q; run 'ussync %s --help'", c.Args().First(), c.Command.Name)
	}
	return nil
}

func env(name string) []string { return []string{"USSYNC_" + name} }

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run this site's node",
		Description: "Settings come from the defaults, then --config, then USSYNC_* environment\n" +
			"variables, then flags. The cluster secret and API token are read from the\n" +
			"files the config names, or from USSYNC_SECRET and USSYNC_API_TOKEN.\n" +
			"SIGHUP reloads the configuration the same way and applies what can change\n" +
			"while the node runs (see docs/operations.md, \"Reloading\").\n\n" + envHelp(),
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "YAML configuration `FILE` (see cluster.yaml)", EnvVars: env("CONFIG")},
			&cli.BoolFlag{Name: "dev", Usage: "run a throw-away node on loopback with a temporary data dir and a generated secret and token", EnvVars: env("DEV")},
			&cli.StringFlag{Name: "name", Usage: "node `NAME`, unique in the cluster (node.name)", EnvVars: env("NAME")},
			&cli.StringFlag{Name: "data-dir", Usage: "store `DIR` (node.data_dir)", EnvVars: env("DATA_DIR")},
			&cli.StringFlag{Name: "bind", Usage: "gossip `IP:PORT` to bind (gossip.bind)", EnvVars: env("BIND")},
			&cli.StringFlag{Name: "advertise", Usage: "gossip `IP:PORT` other nodes reach this one at (gossip.advertise)", EnvVars: env("ADVERTISE")},
			&cli.StringSliceFlag{Name: "join", Usage: "`HOST:PORT` of a node to join, repeatable; replaces gossip.join", EnvVars: env("JOIN")},
			&cli.StringFlag{Name: "api", Usage: "private API `HOST:PORT`, or unix:PATH for a Unix socket (api.listen)", EnvVars: env("API")},
			&cli.StringFlag{Name: "public", Usage: "public endpoints `HOST:PORT` (public.listen)", EnvVars: env("PUBLIC")},
			&cli.StringFlag{Name: "site-url", Usage: "the site's public base `URL` (site.url)", EnvVars: env("SITE_URL")},
			&cli.StringFlag{Name: "secret-file", Usage: "`FILE` of base64 cluster secrets, primary first (gossip.secret_file)", EnvVars: env("SECRET_FILE")},
			&cli.StringFlag{Name: "profile", Usage: "gossip timings `PROFILE`: lan, wan or local (node.profile)", EnvVars: env("PROFILE")},
			&cli.StringFlag{Name: "token-file", Usage: "`FILE` holding the private API token (api.token_file; its variable is USSYNC_API_TOKEN_FILE)"},
			&cli.BoolFlag{Name: "print-config", Usage: "print the effective configuration (file, environment, flags) as YAML, secrets as fingerprints, and exit"},
			&cli.BoolFlag{Name: "strict-perms", Usage: "refuse to start when a secret file is open to other users (node.strict_permissions)", EnvVars: env("STRICT_PERMS")},
			&cli.BoolFlag{Name: "unrevoke-self", Usage: "take this site's revocation back at start: when no node that is not revoked is left to run 'ussync sites unrevoke' (docs/security.md)"},
		},
		Action: agent,
	}
}

// agentConfig builds the node's configuration: defaults (dev or production) →
// YAML → environment → flags (urfave already let flags win over their
// variables) → Validate.
func agentConfig(c *cli.Context) (node.Config, error) {
	cfg := node.DefaultConfig()
	if c.Bool("dev") {
		cfg = node.DevConfig()
		cfg.Node.DataDir = "" // a temporary one unless set below
	}
	if path := c.String("config"); path != "" {
		var err error
		if cfg, err = node.ReadConfig(path, cfg); err != nil {
			return cfg, err
		}
	}
	if err := cfg.ApplyEnv(os.Environ(), allowedEnv(c.App)); err != nil {
		return cfg, err
	}
	for _, v := range []string{"USSYNC_SECRET", "USSYNC_GOSSIP_SECRETS"} {
		if c.IsSet("secret-file") && os.Getenv(v) != "" {
			return cfg, fmt.Errorf("%s and --secret-file (or USSYNC_SECRET_FILE) are both set; keep one", v)
		}
	}
	if c.IsSet("token-file") && os.Getenv("USSYNC_API_TOKEN") != "" {
		return cfg, errors.New("USSYNC_API_TOKEN and --token-file are both set; keep one")
	}
	str := map[string]*string{
		"name":        &cfg.Node.Name,
		"data-dir":    &cfg.Node.DataDir,
		"profile":     &cfg.Node.Profile,
		"bind":        &cfg.Gossip.Bind,
		"advertise":   &cfg.Gossip.Advertise,
		"api":         &cfg.API.Listen,
		"public":      &cfg.Public.Listen,
		"site-url":    &cfg.Site.URL,
		"secret-file": &cfg.Gossip.SecretFile,
		"token-file":  &cfg.API.TokenFile,
	}
	for name, field := range str {
		if c.IsSet(name) {
			*field = c.String(name)
		}
	}
	if c.IsSet("secret-file") {
		cfg.Gossip.Secrets = nil
	}
	if c.IsSet("token-file") {
		cfg.API.Token = ""
	}
	if c.IsSet("join") {
		cfg.Gossip.Join = slices.Clone(c.StringSlice("join"))
	}
	if c.IsSet("strict-perms") {
		cfg.Node.StrictPermissions = c.Bool("strict-perms")
	}
	cfg.UnrevokeSelf = c.Bool("unrevoke-self")
	cfg.Version = version
	return cfg, nil
}

// agent is `ussync agent`: it builds the configuration, starts the node
// and serves until a signal stops it. It is long on purpose: the start-up
// and the shutdown in the order they happen.
func agent(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := agentConfig(c)
	if err != nil {
		return err
	}
	stdout := c.App.Writer
	if c.Bool("print-config") {
		return printConfig(stdout, cfg)
	}

	var devSecret, devToken string
	if cfg.Dev {
		if cfg.Node.DataDir == "" {
			dir, err := os.MkdirTemp("", "ussync-dev-")
			if err != nil {
				return fmt.Errorf("create dev data dir: %w", err)
			}
			defer os.RemoveAll(dir)
			cfg.Node.DataDir = dir
		}
		// A dev node generates what it is not given, and prints only that.
		if _, err := cfg.Secrets(); errors.Is(err, node.ErrNoSecret) {
			devSecret = newSecret()
			cfg.Gossip.Secrets = []string{devSecret}
		}
		if _, err := cfg.APIToken(); errors.Is(err, node.ErrNoAPIToken) {
			devToken = newToken()
			cfg.API.Token = devToken
		}
	}

	if err := cfg.Validate(); err != nil {
		return err
	}
	if _, err := cfg.Secrets(); err != nil {
		return err
	}
	if _, err := cfg.APIToken(); err != nil {
		return err
	}

	level := new(slog.LevelVar)
	logger, err := newLogger(c.App.ErrWriter, cfg.Log, level)
	if err != nil {
		return err
	}
	// What the agent creates (its store's files) is its own: Badger makes
	// some files 0666 less the umask. The node also fixes modes at start.
	privateUmask()
	n, err := node.New(cfg, logger)
	if err != nil {
		return fmt.Errorf("build node: %w", err)
	}
	n.LogLevel = level

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := n.Start(ctx); err != nil {
		_ = closeNode(n) // release what Start opened; the start error is the one to show
		return fmt.Errorf("start node: %w", err)
	}
	if cfg.Dev {
		printDev(stdout, cfg, n, devSecret, devToken)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-hup:
			reload(c, n, cfg, logger)
		}
	}
	stop() // a second signal kills the process at once
	logger.Info("shutting down")
	if err := closeNode(n); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// closeNode leaves the cluster and shuts the node down within closeTimeout.
func closeNode(n *node.Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return n.Close(ctx)
}

// reload is SIGHUP: the configuration is read again as at start (file,
// environment, flags) and handed to the node, which applies what can change
// live, logs what it did and what needs a restart, and shows it in its
// status. A dev node keeps the data dir, secret and token it generated.
func reload(c *cli.Context, n *node.Node, started node.Config, logger *slog.Logger) {
	logger.Info("SIGHUP: reloading the configuration")
	cfg, err := agentConfig(c)
	if err != nil {
		n.ReloadFailed(err)
		return
	}
	if cfg.Dev {
		if cfg.Node.DataDir == "" {
			cfg.Node.DataDir = started.Node.DataDir
		}
		if _, err := cfg.Secrets(); errors.Is(err, node.ErrNoSecret) {
			cfg.Gossip.Secrets = started.Gossip.Secrets
		}
		if _, err := cfg.APIToken(); errors.Is(err, node.ErrNoAPIToken) {
			cfg.API.Token = started.API.Token
		}
	}
	_, _ = n.Reload(cfg) // it logs the outcome and keeps it for the status
}

// newLogger builds the agent's logger at level, which is set to
// lc.Level (a reload sets it again).
func newLogger(w io.Writer, lc node.LogSection, lv *slog.LevelVar) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lc.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", lc.Level)
	}
	lv.Set(level)
	opts := &slog.HandlerOptions{Level: lv}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// printDev shows how to use a dev node. This is the one place a secret is
// printed: it was generated for this throw-away node and dies with it.
func printDev(w io.Writer, cfg node.Config, n *node.Node, secret, token string) {
	api, public := n.APIAddr(), n.PublicAddr()
	if api == "" {
		api = cfg.API.Listen
	}
	if public == "" {
		public = cfg.Public.Listen
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ussync dev node: throw-away, loopback only; do not use in production")
	fmt.Fprintf(tw, "  node\t%s\n", cfg.Node.Name)
	if !strings.HasPrefix(api, "unix:") {
		api = "http://" + api
	}
	fmt.Fprintf(tw, "  private API\t%s\n", api)
	fmt.Fprintf(tw, "  public endpoints\thttp://%s (site URL %s)\n", public, cfg.Site.URL)
	fmt.Fprintf(tw, "  data dir\t%s\n", cfg.Node.DataDir)
	if secret != "" {
		fmt.Fprintf(tw, "  cluster secret (USSYNC_SECRET)\t%s\n", secret)
	}
	if token != "" {
		fmt.Fprintf(tw, "  API token (USSYNC_API_TOKEN)\t%s\n", token)
	}
	tw.Flush()
}

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:         "keygen",
		Usage:        "print a new cluster secret (32 random bytes, base64)",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			_, err := fmt.Fprintln(c.App.Writer, newSecret())
			return err
		},
	}
}

// newSecret returns a new cluster secret, base64 (44 characters).
func newSecret() string {
	s, err := crypto.GenerateSecret()
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return s.Encode()
}

// newToken returns a random API token: 32 bytes, URL-safe base64.
func newToken() string {
	t, err := crypto.NewAPIToken()
	if err != nil {
		panic(err)
	}
	return t
}
