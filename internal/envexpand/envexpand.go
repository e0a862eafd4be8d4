// Package envexpand expands ${VAR} and ${VAR:-default} in one config
// value, and checks what the environment hands in. A problem it reports
// names the variable, never its value: the value may be a secret put in
// the wrong place.
package envexpand

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/connmgr/connmgr/internal/quote"
)

// MaxValueSize caps a value taken from the environment, and a value
// after expansion.
const MaxValueSize = 64 << 10

// maxDepth caps nested defaults: ${A:-${B:-${C}}}.
const maxDepth = 8

// Expand replaces ${VAR} and ${VAR:-default} in s, looking variables up
// with lookup. The default is used when VAR is unset or empty, and may
// itself hold ${...}. $${ is a literal ${; a $ not followed by { is
// itself. It returns the problems found, each naming the variable, never
// its value; with problems the result is not to be used.
func Expand(s string, lookup func(string) (string, bool)) (string, []string) {
	return expand(s, lookup, 0)
}

func expand(s string, lookup func(string) (string, bool), depth int) (string, []string) {
	var b strings.Builder
	var probs []string
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
			continue
		case !strings.HasPrefix(s[i:], "${"):
			b.WriteByte(s[i])
			i++
			continue
		}
		end := closingBrace(s, i+2)
		if end < 0 {
			probs = append(probs, "unclosed ${ (write $${ for a literal ${)")
			return "", probs
		}
		inner := s[i+2 : end]
		i = end + 1
		name, def, hasDef := strings.Cut(inner, ":-")
		if !validName(name) {
			probs = append(probs, quote.Short(name)+" is not a variable name: use ${NAME} or ${NAME:-default}, NAME made of letters, digits and _")
			continue
		}
		v, set := lookup(name)
		switch {
		case (!set || v == "") && hasDef:
			if depth >= maxDepth {
				probs = append(probs, "defaults nested too deeply in ${"+name+":-...}")
				continue
			}
			dv, dp := expand(def, lookup, depth+1)
			probs = append(probs, dp...)
			b.WriteString(dv)
		case !set:
			probs = append(probs, fmt.Sprintf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name))
		default:
			if problem := CheckValue(v); problem != "" {
				probs = append(probs, "environment variable "+name+" "+problem)
				continue
			}
			b.WriteString(v)
		}
		if b.Len() > MaxValueSize {
			probs = append(probs, fmt.Sprintf("value is longer than %d KiB after expansion", MaxValueSize>>10))
			return "", probs
		}
	}
	return b.String(), probs
}

// closingBrace returns the index of the } that closes the ${ whose body
// starts at from, allowing nested ${...}, or -1.
func closingBrace(s string, from int) int {
	depth := 1
	for k := from; k < len(s); k++ {
		switch {
		case s[k] == '$' && k+1 < len(s) && s[k+1] == '{':
			depth++
			k++
		case s[k] == '}':
			depth--
			if depth == 0 {
				return k
			}
		}
	}
	return -1
}

func validName(name string) bool {
	if name == "" || len(name) > 256 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// CheckValue rejects environment values no setting could want: control
// characters (a header value with a newline is a request smuggling risk),
// invalid UTF-8, and absurd sizes. It returns "" for a good value, else
// what is wrong, to follow the variable's name ("is not valid UTF-8").
func CheckValue(v string) string {
	if len(v) > MaxValueSize {
		return fmt.Sprintf("is longer than %d KiB", MaxValueSize>>10)
	}
	if !utf8.ValidString(v) {
		return "is not valid UTF-8"
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return "contains control characters"
		}
	}
	return ""
}
