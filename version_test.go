package main

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersion_Resolve(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	vcs := func(settings ...string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			bi := &debug.BuildInfo{}
			for i := 0; i+1 < len(settings); i += 2 {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
			}
			return bi, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	tests := []struct {
		name              string
		ver, commit, date string
		read              func() (*debug.BuildInfo, bool)
		wantVer, wantSHA  string
		wantDate          string
		wantModified      bool
	}{
		{"stamped release: the stamps win over VCS information",
			"0.2.0", sha, "2026-11-29T18:00:00Z", vcs("vcs.revision", "ffff", "vcs.modified", "true"),
			"0.2.0", sha, "2026-11-29T18:00:00Z", false},
		{"unstamped clean checkout",
			"0.1.0-dev", "", "", vcs("vcs.revision", sha, "vcs.modified", "false", "vcs.time", "2026-11-28T10:00:00Z"),
			"0.1.0-dev+0123456789ab", sha, "", false},
		{"unstamped modified checkout",
			"0.1.0-dev", "", "", vcs("vcs.revision", sha, "vcs.modified", "true"),
			"0.1.0-dev+0123456789ab.dirty", sha, "", true},
		{"no VCS information (-buildvcs=false, go run outside a repository)",
			"0.1.0-dev", "", "", vcs("-compiler", "gc"),
			"0.1.0-dev", "", "", false},
		{"no build information at all",
			"0.1.0-dev", "", "", none,
			"0.1.0-dev", "", "", false},
		{"empty version stamp",
			"", "", "", none,
			"0.0.0-dev", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := resolveBuild(tt.ver, tt.commit, tt.date, tt.read)
			if b.Version != tt.wantVer || b.Commit != tt.wantSHA || b.Date != tt.wantDate || b.Modified != tt.wantModified {
				t.Errorf("resolveBuild = %+v; want version %q commit %q date %q modified %v",
					b, tt.wantVer, tt.wantSHA, tt.wantDate, tt.wantModified)
			}
			if b.Go != runtime.Version() {
				t.Errorf("Go = %q, want %q", b.Go, runtime.Version())
			}
		})
	}
}

func TestVersion_Print(t *testing.T) {
	b := buildInfo{Version: "0.2.0", Commit: "abc", Date: "2026-11-29T18:00:00Z", Go: "go1.26.8"}
	var out bytes.Buffer
	if err := b.print(&out); err != nil {
		t.Fatal(err)
	}
	want := "ussync 0.2.0\ncommit abc\ngo go1.26.8\nplatform " + runtime.GOOS + "/" + runtime.GOARCH + "\nbuilt 2026-11-29T18:00:00Z\n"
	if out.String() != want {
		t.Errorf("print:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	b = buildInfo{Version: "0.1.0-dev", Go: "go1.26.8"}
	if err := b.print(&out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "commit unknown\n") || strings.Contains(s, "built") {
		t.Errorf("an unstamped build without VCS information prints:\n%s", s)
	}
}

// TestVersion_Command: `ussync version` and `ussync --version` print the
// same version, the one the node advertises (agentConfig's cfg.Version).
func TestVersion_Command(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"ussync", "version"}, &out, &errOut); code != exitOK {
		t.Fatalf("ussync version: exit %d, stderr %q", code, errOut.String())
	}
	first, _, _ := strings.Cut(out.String(), "\n")
	if first != "ussync "+currentBuild.Version || version != currentBuild.Version {
		t.Errorf("first line %q; version %q; currentBuild %+v", first, version, currentBuild)
	}
	if !strings.Contains(out.String(), "\ngo "+runtime.Version()+"\n") {
		t.Errorf("no Go version line:\n%s", out.String())
	}

	out.Reset()
	if code := run([]string{"ussync", "--version"}, &out, &errOut); code != exitOK {
		t.Fatalf("ussync --version: exit %d", code)
	}
	if !strings.Contains(out.String(), currentBuild.Version) {
		t.Errorf("--version prints %q, not %q", out.String(), currentBuild.Version)
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"ussync", "version", "extra"}, &out, &errOut); code != exitError || !strings.Contains(errOut.String(), `unexpected argument "extra"`) {
		t.Errorf("ussync version extra: exit %d, stderr %q", code, errOut.String())
	}
}
