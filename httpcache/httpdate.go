package httpcache

import "time"

// IsHTTPDate reports whether s is an HTTP-date in one of the three forms parseHTTPDate accepts
// (RFC 9110 §5.6.7), strictly. A recipient must ignore an If-Modified-Since or If-Unmodified-Since
// that is not one (RFC 9110 §13.1.3, §13.1.4). It does not allocate.
func IsHTTPDate(s string) bool {
	_, ok := parseHTTPDate(s, time.Now())
	return ok
}

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) strictly: IMF-fixdate
// ("Sun, 06 Nov 1994 08:49:37 GMT"), or one of the obsolete forms a recipient must accept,
// rfc850-date ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime-date ("Sun Nov  6 08:49:37 1994"),
// each with exactly its grammar's spacing, two-digit fields, case-sensitive names (HTTP-date is
// case-sensitive) and the zone "GMT". Anything else is not an HTTP-date: a one-digit hour, a
// doubled space, "UTC" or "gmt", a numeric zone, a day that does not exist (Feb 30), leading or
// trailing white space (the field parser has removed OWS). The day-name is not checked against
// the date; RFC 9110 only defines its spelling. Seconds may be 60 (a leap second), read as the
// next minute.
//
// The two-digit year of rfc850-date is read as RFC 9110 §5.6.7 says: a year that would be more
// than 50 years after ref is the most recent year in the past with those two digits.
func parseHTTPDate(s string, ref time.Time) (time.Time, bool) {
	switch {
	case len(s) == len("Sun, 06 Nov 1994 08:49:37 GMT") && s[3] == ',':
		return parseIMFFixdate(s)
	case len(s) == len("Sun Nov  6 08:49:37 1994") && s[3] == ' ':
		return parseAsctime(s)
	}
	return parseRFC850(s, ref)
}

var (
	dayNames     = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	longDayNames = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	monthNames   = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// parseIMFFixdate parses day-name "," SP 2DIGIT SP month SP 4DIGIT SP time-of-day SP "GMT".
func parseIMFFixdate(s string) (time.Time, bool) {
	if !isDayName(s[:3]) || s[3:5] != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[25:] != " GMT" {
		return time.Time{}, false
	}
	day, ok1 := digits(s[5:7])
	month := monthNumber(s[8:11])
	year, ok2 := digits(s[12:16])
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	return date(year, month, day, s[17:25])
}

// parseAsctime parses day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP 4DIGIT.
func parseAsctime(s string) (time.Time, bool) {
	if !isDayName(s[:3]) || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' {
		return time.Time{}, false
	}
	month := monthNumber(s[4:7])
	dd := s[8:10]
	if dd[0] == ' ' {
		dd = "0" + dd[1:]
		if dd == "00" {
			return time.Time{}, false
		}
	}
	day, ok1 := digits(dd)
	year, ok2 := digits(s[20:24])
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	return date(year, month, day, s[11:19])
}

// parseRFC850 parses day-name-l "," SP 2DIGIT "-" month "-" 2DIGIT SP time-of-day SP "GMT".
func parseRFC850(s string, ref time.Time) (time.Time, bool) {
	comma := -1
	for _, name := range longDayNames {
		if len(s) > len(name) && s[:len(name)] == name {
			comma = len(name)
			break
		}
	}
	rest := s[max(comma, 0):]
	if comma < 0 || len(rest) != len(", 06-Nov-94 08:49:37 GMT") || rest[:2] != ", " ||
		rest[4] != '-' || rest[8] != '-' || rest[11] != ' ' || rest[20:] != " GMT" {
		return time.Time{}, false
	}
	day, ok1 := digits(rest[2:4])
	month := monthNumber(rest[5:8])
	yy, ok2 := digits(rest[9:11])
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	// The year with those two digits in ref's century, moved a century back when it is more
	// than 50 years after ref, or a century on when that one is not.
	century := ref.UTC().Year() / 100 * 100
	year := century + yy
	if year > ref.UTC().Year()+50 {
		year -= 100
	} else if year+100 <= ref.UTC().Year()+50 {
		year += 100
	}
	return date(year, month, day, rest[12:20])
}

// date builds the UTC time of year, month, day and a time-of-day "HH:MM:SS", reporting false
// when a field is out of range or the day does not exist in that month.
func date(year, month, day int, tod string) (time.Time, bool) {
	if month == 0 || tod[2] != ':' || tod[5] != ':' {
		return time.Time{}, false
	}
	hour, ok1 := digits(tod[0:2])
	minute, ok2 := digits(tod[3:5])
	sec, ok3 := digits(tod[6:8])
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 60 || day < 1 || day > 31 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, 0, 0, time.UTC)
	if t.Day() != day { // Feb 30 and the like roll over into the next month
		return time.Time{}, false
	}
	return t.Add(time.Duration(sec) * time.Second), true
}

func isDayName(s string) bool {
	for _, n := range dayNames {
		if s == n {
			return true
		}
	}
	return false
}

// monthNumber returns 1 to 12 for a case-sensitive month name, 0 for anything else.
func monthNumber(s string) int {
	for i, n := range monthNames {
		if s == n {
			return i + 1
		}
	}
	return 0
}

// digits parses s, all ASCII digits, as a number.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, s != ""
}

// StrongLastModified reports whether lastModified is a strong validator of a response dated date
// (RFC 9110 §8.8.2.2): both are HTTP-dates and date is at least one second after lastModified,
// so the representation cannot have changed twice within the second Last-Modified names. Only a
// strong validator may make an If-Range date hold (§13.1.5).
func StrongLastModified(lastModified, date string) bool {
	lm, ok := parseHTTPDate(lastModified, time.Now())
	if !ok {
		return false
	}
	d, ok := parseHTTPDate(date, time.Now())
	return ok && d.Sub(lm) >= time.Second
}
