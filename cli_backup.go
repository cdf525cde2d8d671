package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ussync/ussync/node"
)

// `ussync backup` and `ussync restore` (docs/operations.md, "Backup and
// restore").

// progressEvery is the least time between two progress lines.
const progressEvery = time.Second

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "save a consistent copy of a running node's store into FILE, through its private API",
		ArgsUsage: "FILE",
		Description: "The node keeps serving meanwhile: the copy is one snapshot of its store\n" +
			"(users, sessions, the site's own data, the replay cache of tickets), checked\n" +
			"as it arrives, written to FILE.partial and renamed to FILE once complete. It\n" +
			"holds no cluster secret. Progress goes to stderr. Restore it with\n" +
			"'ussync restore'.",
		OnUsageError: adminUsageError,
		Flags:        apiFlags(&cli.BoolFlag{Name: "force", Usage: "replace FILE if it exists"}),
		Action:       backup,
	}
}

func backup(c *cli.Context) error {
	a, cl, err := argsClient(c, "FILE")
	if err != nil {
		return err
	}
	path := a[0]
	if _, err := os.Stat(path); err == nil && !c.Bool("force") {
		return fmt.Errorf("%s exists: pick another name, or pass --force to replace it", path)
	}
	partial := path + ".partial"
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create the backup file: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(partial)
		}
	}()

	// The stream goes to the file and, through a pipe, to a reader that
	// checks it as it comes and reports progress.
	pr, pw := io.Pipe()
	prog := newProgress(c.App.ErrWriter, "backup")
	var (
		wg      sync.WaitGroup
		info    node.BackupInfo
		counts  node.BackupCounts
		readErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		info, counts, readErr = node.ReadBackup(pr, prog.header, prog.update)
		pr.CloseWithError(readErr)
		io.Copy(io.Discard, pr) // let the download finish if the check stopped early
	}()
	size, err := cl.Backup(c.Context, io.MultiWriter(f, pw))
	pw.CloseWithError(err)
	wg.Wait()
	switch {
	case readErr != nil:
		return &exitErr{code: exitUnreachable, err: fmt.Errorf("the backup from the node is not complete, nothing saved: %w", readErr)}
	case err != nil:
		return apiErr(err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write the backup file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write the backup file: %w", err)
	}
	f = nil
	if err := os.Rename(partial, path); err != nil {
		return fmt.Errorf("write the backup file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	_, err = fmt.Fprintf(c.App.Writer, "backup of node %s taken at %s written to %s: %d records (%d users, %d sessions), %d entries in all, %s\n",
		info.Node, cliTime(info.CreatedAt), path, counts.Users+counts.Sessions, counts.Users, counts.Sessions, counts.Entries, byteSize(size))
	return err
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "write a backup into a node's empty data directory, the node stopped",
		ArgsUsage: "FILE",
		Description: "The data directory is node.data_dir of --config (and its USSYNC_NODE_DATA_DIR\n" +
			"twin), or --data-dir. It must be empty or missing: stop the node and move the\n" +
			"old directory away first. The backup is checked as it is read; on any error\n" +
			"the directory is left empty. Run as root into a directory owned by the node's\n" +
			"user, the files are given to that user. The backup holds no cluster secret:\n" +
			"the node's next start takes its keyring from the configuration's secrets.\n" +
			"Then start the node: it rejoins and catches up on what changed since.",
		OnUsageError: adminUsageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "the node's configuration `FILE`, for node.data_dir", EnvVars: env("CONFIG")},
			&cli.StringFlag{Name: "data-dir", Usage: "the data `DIR` to restore into (node.data_dir)", EnvVars: env("DATA_DIR")},
		},
		Action: restore,
	}
}

func restore(c *cli.Context) error {
	a, err := wantArgs(c, "FILE")
	if err != nil {
		return err
	}
	dir := c.String("data-dir")
	if dir == "" {
		cfg := node.DefaultConfig()
		if path := c.String("config"); path != "" {
			if cfg, err = node.ReadConfig(path, cfg); err != nil {
				return err
			}
		}
		if err := cfg.ApplyEnv(os.Environ(), allowedEnv(c.App)); err != nil {
			return err
		}
		if !c.IsSet("config") && os.Getenv("USSYNC_NODE_DATA_DIR") == "" {
			return errors.New("no data directory: pass --data-dir DIR or --config FILE")
		}
		dir = cfg.Node.DataDir
	}
	f, err := os.Open(a[0])
	if err != nil {
		return fmt.Errorf("open the backup: %w", err)
	}
	defer f.Close()
	prog := newProgress(c.App.ErrWriter, "restore")
	info, counts, err := node.Restore(dir, f, prog.header, prog.update)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.App.Writer, "restored the backup of node %s taken at %s into %s: %d records (%d users, %d sessions), %d entries in all; start the node now\n",
		info.Node, cliTime(info.CreatedAt), dir, counts.Users+counts.Sessions, counts.Users, counts.Sessions, counts.Entries)
	return err
}

// progress prints "backup: 45000/100012 records (45%)" lines on stderr at
// most once a second, and a last one at the end.
type progress struct {
	w     io.Writer
	what  string
	mu    sync.Mutex
	total int
	last  time.Time
	start time.Time
}

func newProgress(w io.Writer, what string) *progress {
	return &progress{w: w, what: what, start: time.Now()}
}

func (p *progress) header(info node.BackupInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = info.Users + info.Sessions
}

func (p *progress) update(c node.BackupCounts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < progressEvery {
		return
	}
	p.last = time.Now()
	done := c.Users + c.Sessions
	if p.total > 0 {
		fmt.Fprintf(p.w, "%s: %d/%d records (%d%%), %s\n", p.what, done, p.total, min(100, 100*done/int64(p.total)), time.Since(p.start).Round(time.Second))
	} else {
		fmt.Fprintf(p.w, "%s: %d records, %s\n", p.what, done, time.Since(p.start).Round(time.Second))
	}
}

// byteSize formats n bytes for people.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
