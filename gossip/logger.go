package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// memberlistLog turns memberlist's "[LEVEL] memberlist: ..." lines into slog
// records at the matching level.
func memberlistLog(l *slog.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	msg := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for prefix, lv := range map[string]slog.Level{"[DEBUG] ": slog.LevelDebug, "[INFO] ": slog.LevelInfo, "[WARN] ": slog.LevelWarn, "[ERR] ": slog.LevelError} {
		if bytes.HasPrefix(msg, []byte(prefix)) {
			level, msg = lv, msg[len(prefix):]
			break
		}
	}
	w.l.Log(context.Background(), level, string(msg))
	return len(p), nil
}
