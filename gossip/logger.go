package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// memberlistLog turns memberlist's "[LEVEL] memberlist: ..." lines into slog
// records at the matching level. Once quiet reports true (the member is
// shutting down), its complaints about closed sockets are only debug, and
// so are the complaints this package counts and logs itself (countedLines).
func memberlistLog(l *slog.Logger, quiet func() bool) *log.Logger {
	return log.New(logWriter{l, quiet}, "", 0)
}

type logWriter struct {
	l     *slog.Logger
	quiet func() bool
}

func (w logWriter) Write(p []byte) (int, error) {
	msg := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for prefix, lv := range map[string]slog.Level{"[DEBUG] ": slog.LevelDebug, "[INFO] ": slog.LevelInfo, "[WARN] ": slog.LevelWarn, "[ERR] ": slog.LevelError} {
		if bytes.HasPrefix(msg, []byte(prefix)) {
			level, msg = lv, msg[len(prefix):]
			break
		}
	}
	if level > slog.LevelDebug && (w.quiet != nil && w.quiet() || counted(msg)) {
		level = slog.LevelDebug
	}
	w.l.Log(context.Background(), level, string(msg))
	return len(p), nil
}

// countedLines are memberlist complaints this package counts and logs
// itself, sampled (guard.go, reclaim.go): memberlist would log each
// undecryptable stream, and each alive message of a member back at a new
// address, at ERROR.
var countedLines = [][]byte{
	[]byte("no installed keys could decrypt"),
	[]byte("encryption is configured but remote state is not encrypted"),
	[]byte("Conflicting address for"),
}

func counted(msg []byte) bool {
	for _, c := range countedLines {
		if bytes.Contains(msg, c) {
			return true
		}
	}
	return false
}
