package middleware

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// maxPanicFrames bounds the stack a PanicError keeps: enough to find the
// faulty line, short enough for a log line and a dead-letter header.
const maxPanicFrames = 8

// PanicError is the error Recover returns for a handler that panicked.
type PanicError struct {
	// Value is what the handler passed to panic.
	Value any
	// Stack lists the innermost frames at the panic, one "function file:line"
	// per line, runtime frames left out.
	Stack string
}

// Error describes the panic and where it happened.
func (e *PanicError) Error() string {
	return fmt.Sprintf("handler panicked: %v\n%s", e.Value, e.Stack)
}

// Recover turns a panic in the next handler into a *PanicError, so one bad
// event cannot crash the engine. The error is not permanent: the panic may
// come from a transient condition, and Retry bounds the attempts anyway.
func Recover() engine.Middleware {
	return func(next engine.Handler) engine.Handler {
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) (out []engine.Message, err error) {
			defer func() {
				if r := recover(); r != nil {
					out, err = nil, &PanicError{Value: r, Stack: panicStack()}
				}
			}()
			return next.Handle(ctx, msg)
		})
	}
}

// panicStack formats the frames of the panicking goroutine, skipping the
// runtime's own and those of this package's deferred function.
func panicStack() string {
	pcs := make([]uintptr, 32)
	// Skip runtime.Callers, panicStack and the deferred closure.
	pcs = pcs[:runtime.Callers(3, pcs)]
	frames := runtime.CallersFrames(pcs)
	var b strings.Builder
	n := 0
	for n < maxPanicFrames {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") {
			b.WriteString(f.Function)
			b.WriteByte(' ')
			b.WriteString(f.File)
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(f.Line))
			b.WriteByte('\n')
			n++
		}
		if !more {
			break
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}
