package connmgr

import (
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
)

// This file is the one place where a panic in user code (hooks, plugins,
// listeners, observers, key functions, Close methods) is recovered. The
// helpers here cannot panic themselves, whatever was thrown: a typed-nil
// error, or an Error or String method that panics in turn.

// recoverer recovers the panics of the user code a component calls, and
// logs them to the component's logger. The Manager embeds one (so
// m.recovered is it), as does an endpoint's upstream set.
type recoverer struct {
	logger *slog.Logger
}

// recovered is the deferred half of every call into user code:
//
//	defer m.recovered("observer", name, &err)
//	userCode()
//
// It must be deferred directly (recover only works there). It reports
// nothing when no panic happened. On a panic it logs the value and the
// stack, stores an error describing the panic in *errp when errp is not
// nil, then calls each of then with the value, for a caller that settles
// permits or turns the panic into an error of its own:
//
//	defer m.recovered("transport", key, nil, func(v any) { err = &transportPanicError{value: v} })
func (r recoverer) recovered(kind, name string, errp *error, then ...func(v any)) {
	v := recover()
	if v == nil {
		return
	}
	r.logPanic(kind, name, v)
	if errp != nil {
		*errp = &panicError{kind: kind, name: name, value: safeString(v)}
	}
	for _, f := range then {
		f(v)
	}
}

// logPanic logs a recovered panic. A logger whose handler panics is
// itself user code: its panic is dropped.
func (r recoverer) logPanic(kind, name string, v any) {
	defer func() { _ = recover() }()
	r.logger.Error("connmgr: "+kind+" panicked",
		slog.String("name", name), slog.String("panic", safeString(v)), slog.String("stack", string(debug.Stack())))
}

// panicError is a recovered panic of user code, turned into an error.
type panicError struct {
	kind, name, value string
}

func (e *panicError) Error() string {
	return "connmgr: " + e.kind + " " + e.name + " panicked: " + e.value
}

// safeString describes a panic value without ever panicking: a nil
// pointer inside an interface is named by its type, and an Error or
// String method that panics is reported as such.
func safeString(v any) (s string) {
	defer func() {
		if recover() != nil {
			s = fmt.Sprintf("%T value whose Error or String method panicked", v)
		}
	}()
	if v == nil {
		return "nil"
	}
	if rv := reflect.ValueOf(v); isNilable(rv.Kind()) && rv.IsNil() {
		return fmt.Sprintf("(%T)(nil)", v)
	}
	switch x := v.(type) {
	case string:
		return x
	case error:
		return x.Error()
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprintf("%v", v)
}

func isNilable(k reflect.Kind) bool {
	switch k {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface, reflect.UnsafePointer:
		return true
	}
	return false
}

// panicString is safeString, under its older name.
func panicString(p any) string { return safeString(p) }

// safeName returns p.Name(), or a description when it panics.
func safeName(p Plugin) (name string) {
	defer func() {
		if recover() != nil {
			name = fmt.Sprintf("%T (Name panicked)", p)
		}
	}()
	return p.Name()
}
