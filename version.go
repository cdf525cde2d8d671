package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// Build stamps, set by scripts/release.sh with
//
//	go build -ldflags "-X main.version=0.2.0 -X main.commit=<git sha> -X main.buildDate=<RFC 3339>"
//
// version itself is declared in main.go. A build that is not stamped
// (go build, go run, go install) takes the commit from the VCS information
// the Go toolchain records (runtime/debug.ReadBuildInfo, vcs.revision and
// vcs.modified; absent under -buildvcs=false) and marks its version as a
// development build of that commit; it has no build date.
var (
	commit    = "" // full git commit hash
	buildDate = "" // when the release was built, RFC 3339 UTC
)

// buildInfo is what this binary knows about its own build.
type buildInfo struct {
	// Version is the release version ("0.2.0"), or for an unstamped build
	// the default of main.version followed by "+<short commit>" (and
	// ".dirty" when the work tree had changes): a semver build-metadata
	// suffix, so that two development builds of different commits never
	// advertise the same version.
	Version string
	// Commit is the full git commit hash, "" when unknown.
	Commit string
	// Modified reports that the work tree had uncommitted changes (only
	// known for unstamped builds, from vcs.modified).
	Modified bool
	// Date is when the release was built (stamped only), else "".
	Date string
	// Go is the toolchain that built the binary (runtime.Version).
	Go string
}

// currentBuild is this binary's buildInfo, worked out once at start.
var currentBuild = resolveBuild(version, commit, buildDate, readBuildInfo)

func init() {
	// The one version string of this binary: `ussync version`,
	// `ussync --version`, and what the node advertises to its peers and in
	// its status (main.go hands version to node.Config.Version).
	version = currentBuild.Version
}

func readBuildInfo() (*debug.BuildInfo, bool) { return debug.ReadBuildInfo() }

// resolveBuild combines the stamps with the toolchain's build information.
// A stamped commit wins: a release is described by what release.sh says.
func resolveBuild(ver, sha, date string, read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: ver, Commit: sha, Date: date, Go: runtime.Version()}
	if b.Version == "" {
		b.Version = "0.0.0-dev"
	}
	if sha != "" {
		return b
	}
	bi, ok := read()
	if !ok {
		return b
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	if b.Commit != "" {
		b.Version += "+" + shortCommit(b.Commit)
		if b.Modified {
			b.Version += ".dirty"
		}
	}
	return b
}

// shortCommit is the first 12 characters of a commit hash, as git's
// abbreviations go (enough to be unique in any repository this size).
func shortCommit(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// print writes the build as `ussync version` shows it: one "key value" line
// each, unknown fields left out, so scripts can read it with awk.
func (b buildInfo) print(w io.Writer) error {
	commit := b.Commit
	if commit == "" {
		commit = "unknown"
	} else if b.Modified {
		commit += " (modified)"
	}
	_, err := fmt.Fprintf(w, "ussync %s\ncommit %s\ngo %s\nplatform %s/%s\n", b.Version, commit, b.Go, runtime.GOOS, runtime.GOARCH)
	if err == nil && b.Date != "" {
		_, err = fmt.Fprintf(w, "built %s\n", b.Date)
	}
	return err
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:         "version",
		Usage:        "print the version, commit, Go version and build date",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return currentBuild.print(c.App.Writer)
		},
	}
}
