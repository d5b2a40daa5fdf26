package raftstore

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter is an hclog.Logger over a slog.Logger, so that raft's lines
// come out of the same handler as the rest of the process (one JSON schema:
// time, level, msg, then attributes; raft's carry component=raft). The
// alternative, hclog's own JSON format, uses other keys (@timestamp,
// @level, @message) and ignores the process's log level.
type hclogAdapter struct {
	log     *slog.Logger
	name    string // hclog's name; "logger" attribute when not the root's
	root    string // the component attribute, set once on log
	implied []any
	level   *atomic.Int32 // hclog.Level; shared by the loggers derived with With/Named
}

func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	lv := &atomic.Int32{}
	lv.Store(int32(hclog.Trace)) // the slog handler's level decides
	return &hclogAdapter{log: l.With("component", name), name: name, root: name, level: lv}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// routine reports raft warnings that are part of a normal start: a
// node that has never seen a leader times out and starts the first
// election (the only way a freshly bootstrapped single node becomes
// leader). With a last leader known, the same line means the leader was
// lost and stays a warning.
func routine(msg string, args []any) bool {
	if msg != "heartbeat timeout reached, starting election" {
		return false
	}
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "last-leader-addr" {
			if v, ok := args[i+1].(string); ok && v != "" {
				return false
			}
			if v, ok := args[i+1].(interface{ String() string }); ok && v.String() != "" {
				return false
			}
		}
	}
	return true
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level < hclog.Level(a.level.Load()) || level == hclog.Off {
		return
	}
	if level == hclog.Warn && routine(msg, args) {
		level = hclog.Info
	}
	sl := slogLevel(level)
	ctx := context.Background()
	if !a.log.Enabled(ctx, sl) {
		return
	}
	all := make([]any, 0, len(a.implied)+len(args)+2)
	all = append(all, a.implied...)
	for i, v := range args {
		if i%2 == 1 {
			v = hclogValue(v)
		}
		all = append(all, v)
	}
	if a.name != a.root {
		all = append(all, "logger", a.name)
	}
	a.log.Log(ctx, sl, msg, all...)
}

// hclogValue renders values the way hclog would: hclog.Fmt as its
// formatted text, Stringers (raft passes *raft.Raft, "Node at <addr>
// [state]") and errors as strings; JSON of such structs would be {}.
func hclogValue(v any) any {
	switch x := v.(type) {
	case hclog.Format:
		if len(x) > 0 {
			if f, ok := x[0].(string); ok {
				return fmt.Sprintf(f, x[1:]...)
			}
		}
		return fmt.Sprint(x...)
	case error:
		return x.Error()
	case fmt.Stringer:
		return x.String()
	}
	return v
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(l hclog.Level) bool {
	return l >= hclog.Level(a.level.Load()) && a.log.Enabled(context.Background(), slogLevel(l))
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.implied = append(a.implied[:len(a.implied):len(a.implied)], args...)
	return &c
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

func (a *hclogAdapter) SetLevel(l hclog.Level) { a.level.Store(int32(l)) }
func (a *hclogAdapter) GetLevel() hclog.Level  { return hclog.Level(a.level.Load()) }

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	level := slog.LevelInfo
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = slogLevel(opts.ForceLevel)
	}
	return slog.NewLogLogger(a.log.Handler(), level)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(opts).Writer()
}
