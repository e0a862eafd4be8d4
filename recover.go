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

// recovered is the deferred half of every call into user code:
//
//	defer m.recovered("observer", name, &err)
//	userCode()
//
// It must be deferred directly (recover only works there). On a panic it
// logs the value and the stack and, when errp is not nil, stores a
// *HookError-style error describing it. It reports nothing when no panic
// happened.
func (m *Manager) recovered(kind, name string, errp *error) {
	v := recover()
	if v == nil {
		return
	}
	m.logPanic(kind, name, v)
	if errp != nil {
		*errp = &panicError{kind: kind, name: name, value: safeString(v)}
	}
}

// logPanic logs a recovered panic. A logger whose handler panics is
// itself user code: its panic is dropped.
func (m *Manager) logPanic(kind, name string, v any) {
	defer func() { _ = recover() }()
	m.logger.Error("connmgr: "+kind+" panicked",
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
