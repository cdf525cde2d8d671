package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ussync/ussync/node"
)

// The USSYNC_* variables `ussync agent` accepts: the twin of every key of
// cluster.yaml (node.EnvVars, generated from the config's struct),
// USSYNC_SECRET, the variables of the command line's flags, and otherEnv.
// Any other USSYNC_* variable in the agent's environment is an error, like
// an unknown key in the file: a misspelt USSYNC_LOG_FROMAT must not be
// silently ignored.

// otherEnv are the USSYNC_* variables that are neither a key's twin nor a
// flag's, and that the agent therefore ignores: the ones the tests, the
// benchmarks and scripts/ read (a developer may export them in the shell
// that also runs a node). TestEnv_EveryVariableIsKnown checks that every
// variable the repository reads is here, a twin or a flag's; README
// "Configuration" documents it.
var otherEnv = []string{
	"USSYNC_E2E_REQUIRE",       // tests: fail, rather than skip, without a program they drive
	"USSYNC_E2E_KEEP",          // the WordPress testbed: keep its directory
	"USSYNC_BIN",               // scripts/cluster.sh: the binary to run
	"USSYNC_CHROMIUM",          // tests: the programs they drive (internal/testenv)
	"USSYNC_FIREFOX",           //
	"USSYNC_NGINX",             //
	"USSYNC_CADDY",             //
	"USSYNC_CERTUTIL",          //
	"USSYNC_PHP",               //
	"USSYNC_MARIADBD",          //
	"USSYNC_NODE",              //
	"USSYNC_SYSTEMD_ANALYZE",   //
	"USSYNC_PROMTOOL",          //
	"USSYNC_BROWSER_BENCH",     // browser benchmarks
	"USSYNC_WP_PERF",           // the WordPress performance measurement
	"USSYNC_ADMIN_SCREENSHOTS", // the admin page tests: save screenshots
	"USSYNC_UPGRADE_FROM",      // the upgrade test: the git revision of the previous version
	"USSYNC_PREVIOUS_BINARY",   // the upgrade test: a prebuilt binary of the previous version
	"USSYNC_FAULTS_SEED",       // the randomised fault schedule: its seed, to reproduce a run
	"USSYNC_FAULTS_DURATION",   // and how long it runs
}

// flagEnv lists the variables of every flag of app's commands.
func flagEnv(app *cli.App) []string {
	var out []string
	var walk func(cmds []*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
					out = append(out, ev.GetEnvVars()...)
				}
			}
			walk(c.Subcommands)
		}
	}
	for _, f := range app.Flags {
		if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
			out = append(out, ev.GetEnvVars()...)
		}
	}
	walk(app.Commands)
	slices.Sort(out)
	return slices.Compact(out)
}

// allowedEnv accepts the USSYNC_* variables that are not keys' twins but
// that the agent's environment may hold (see otherEnv).
func allowedEnv(app *cli.App) func(string) bool {
	allowed := map[string]bool{}
	for _, name := range append(flagEnv(app), otherEnv...) {
		allowed[name] = true
	}
	return func(name string) bool { return allowed[name] }
}

// warnUnknownEnv writes a warning to w for each USSYNC_* variable of
// environ the program does not know at all: not a key's twin, not
// USSYNC_SECRET, not a flag's variable, not one of otherEnv. The agent
// refuses such a variable (Config.ApplyEnv); the other commands read only
// their flags' variables and would otherwise ignore a misspelt
// USSYNC_API_TOKNE in silence, and call the node without the token the
// user meant. A variable the program knows but the command does not read
// (the agent's USSYNC_LOG_LEVEL in the shell that runs `ussync status`) is
// no typo and passes.
func warnUnknownEnv(app *cli.App, environ []string, w io.Writer) {
	allowed := allowedEnv(app)
	known := append(flagEnv(app), otherEnv...)
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, node.EnvPrefix) || allowed(name) || node.IsEnvVar(name) {
			continue
		}
		unknown = append(unknown, name)
	}
	slices.Sort(unknown)
	for _, name := range slices.Compact(unknown) {
		msg := fmt.Sprintf("ussync: warning: unknown environment variable %s, ignored", name)
		if near := node.NearestEnvVar(name, known...); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", near)
		}
		fmt.Fprintln(w, msg)
	}
}

// envHelp is the part of `ussync agent --help` that lists the environment.
func envHelp() string {
	var b strings.Builder
	b.WriteString("ENVIRONMENT\n")
	b.WriteString("Every key of cluster.yaml has a twin, USSYNC_<SECTION>_<KEY>, applied after\n")
	b.WriteString("the file and before the flags (lists: separated by commas or spaces;\n")
	b.WriteString("empty variables are ignored). SIGHUP applies the keys marked *; the others\n")
	b.WriteString("need a restart. An unknown USSYNC_* variable is an error.\n\n")
	for _, v := range node.EnvVars() {
		live := " "
		if v.Live {
			live = "*"
		}
		fmt.Fprintf(&b, "  %s %-36s %s\n", live, v.Name, v.Key)
	}
	b.WriteString("\nAlso: USSYNC_SECRET (the cluster secrets, as USSYNC_GOSSIP_SECRETS), the\n")
	b.WriteString("variables of the flags below, and those the tests read (README, Configuration).\n")
	b.WriteString("A flag's variable counts as the flag: USSYNC_NAME wins over USSYNC_NODE_NAME.")
	return b.String()
}

// printConfig is `ussync agent --print-config`: the configuration the
// agent would run with, validated, as YAML without a secret (see
// node.Config.Effective). A dev node's generated secret, token and
// temporary data dir are not made up for it.
func printConfig(w io.Writer, cfg node.Config) error {
	if cfg.Dev && cfg.Node.DataDir == "" {
		cfg.Node.DataDir = "(a temporary directory)"
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	out, err := cfg.Effective()
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, out)
	return err
}
