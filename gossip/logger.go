package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// memberlistLog turns memberlist's "[LEVEL] memberlist: ..." lines into slog
// records at the matching level. Once quiet reports true (the member is
// shutting down), its complaints about closed sockets are only debug.
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
	if level > slog.LevelDebug && w.quiet != nil && w.quiet() {
		level = slog.LevelDebug
	}
	w.l.Log(context.Background(), level, string(msg))
	return len(p), nil
}
