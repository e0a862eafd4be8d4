// Package quote quotes what a config file says, for an error message,
// cut short so that a message stays short whatever the file holds.
package quote

import (
	"strconv"
	"unicode/utf8"
)

// MaxBytes caps the bytes of a value Short quotes back.
const MaxBytes = 40

// Short quotes s as strconv.Quote does, cut to MaxBytes bytes (at a
// character boundary) and followed by its length when it was longer.
func Short(s string) string {
	if len(s) <= MaxBytes {
		return strconv.Quote(s)
	}
	cut := MaxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}
