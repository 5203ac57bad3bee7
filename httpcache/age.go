package httpcache

import (
	"strings"
	"time"
)

// ParseAge returns the value of a response's Age field lines (RFC 9111 §5.1) and reports
// whether there was a valid one. Age is a singleton field, but RFC 9111 §5.1 says what a cache
// does with a list: it uses the first member and discards the rest ("7200, 0" is 7200 s; with
// several field lines, the first line's first member). A first member that is not a
// non-negative integer ("1200a", "-5", "", "0x10", a quoted number) makes the field invalid, and
// an invalid Age is ignored (false), as §5.1 recommends: the age is then what the response delay
// alone gives. A value over 2^31 s is 2^31 s (RFC 9111 §1.2.2). It does not allocate.
func ParseAge(lines []string) (time.Duration, bool) {
	if len(lines) == 0 {
		return 0, false
	}
	first, _, _ := strings.Cut(lines[0], ",")
	return parseDelta(trimOWS(first))
}
