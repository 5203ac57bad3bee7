package config

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// maxNumberLen bounds the text the number parsers look at, so a pasted blob cannot make them
// do big-number arithmetic on megabytes of digits.
const maxNumberLen = 64

var (
	errNegative    = errors.New("must not be negative")
	errTooLong     = fmt.Errorf("too long (more than %d characters)", maxNumberLen)
	errNotDuration = errors.New("not a duration (use Go syntax like 90s or 5m, or a number of seconds)")
	errNotSize     = errors.New("not a size (use a number of bytes, or a number with KiB, MiB or GiB like 512KiB or 1.5MiB)")
	errNotBool     = errors.New("not a boolean (use true or false, 1 or 0, yes or no, on or off)")
)

// ParseDuration parses a non-negative duration written in Go syntax ("90s", "5m", "1h30m", see
// time.ParseDuration) or as a bare number of seconds ("90", "1.5"; fractions below a nanosecond
// are dropped). Surrounding white space is ignored. A negative, empty or out-of-range value is an
// error. The error says what is wrong but does not repeat s: the caller names the setting and the
// value.
func ParseDuration(s string) (time.Duration, error) {
	s, err := numberText(s, errNotDuration)
	if err != nil {
		return 0, err
	}
	if n, ok := decimal(s, big.NewInt(int64(time.Second))); ok {
		if !n.IsInt64() {
			return 0, errors.New("too large (the maximum is about 292 years)")
		}
		return time.Duration(n.Int64()), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil { // also an overflow such as "300000h": the hint still applies
		return 0, errNotDuration
	}
	if d < 0 {
		return 0, errNegative
	}
	return d, nil
}

// numberText returns s without surrounding white space, or an error when it is empty (empty),
// longer than maxNumberLen or negative.
func numberText(s string, empty error) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", empty
	case len(s) > maxNumberLen:
		return "", errTooLong
	case s[0] == '-':
		return "", errNegative
	}
	return s, nil
}

// ParseSize parses a non-negative number of bytes: either a plain whole number ("1048576",
// optionally followed by B) or a number, possibly with a fraction, followed by a binary unit
// ("512KiB", "1.5MiB", "10 MiB", "2GiB"). K, KB and KiB all mean 1024 bytes, M, MB and MiB
// 1024², G, GB and GiB 1024³; units are case-insensitive and may follow a space. A fractional
// result is rounded down to whole bytes. A negative, empty or out-of-range value, or another unit
// (such as TB), is an error. The error does not repeat s: the caller names the setting and the
// value.
func ParseSize(s string) (int64, error) {
	s, err := numberText(s, errNotSize)
	if err != nil {
		return 0, err
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	var mult int64
	switch strings.ToLower(unit) {
	case "", "b":
		mult = 1
	case "k", "kb", "kib":
		mult = 1 << 10
	case "m", "mb", "mib":
		mult = 1 << 20
	case "g", "gb", "gib":
		mult = 1 << 30
	default:
		if num == "" {
			return 0, errNotSize
		}
		return 0, fmt.Errorf("unknown unit %q (use B, KiB, MiB or GiB)", unit)
	}
	if mult == 1 && strings.Contains(num, ".") {
		return 0, errors.New("a number of bytes must be whole (or give a unit, like 1.5MiB)")
	}
	n, ok := decimal(num, big.NewInt(mult))
	if !ok {
		return 0, errNotSize
	}
	if !n.IsInt64() {
		return 0, errors.New("too large (the maximum is 8 EiB)")
	}
	return n.Int64(), nil
}

// ParseBool parses 1, true, yes, on (true) and 0, false, no, off (false), case-insensitive,
// ignoring surrounding white space.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, errNotBool
}

// decimal reports whether s is an unsigned decimal number (digits with at most one '.', and at
// least one digit) and returns ⌊s × mult⌋, computed exactly.
func decimal(s string, mult *big.Int) (*big.Int, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole+frac == "" || !isDigits(whole) || !isDigits(frac) {
		return nil, false
	}
	n, _ := new(big.Int).SetString(whole+frac, 10) // digits only, cannot fail
	n.Mul(n, mult)
	if frac != "" {
		n.Quo(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
	}
	return n, true
}

// isDigits reports whether s consists of ASCII digits only (true for "").
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
