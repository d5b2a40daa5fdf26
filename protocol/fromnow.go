package protocol

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrTimeExpression is wrapped by every error of FromNow.
var ErrTimeExpression = errors.New("not a time expression")

// TimeExpressionError is FromNow's error; its text is taskcluster-client's
// ("String: '<s>' isn't a time expression").
type TimeExpressionError struct{ Input string }

func (e *TimeExpressionError) Error() string {
	return "String: '" + e.Input + "' isn't a time expression"
}

func (e *TimeExpressionError) Unwrap() error { return ErrTimeExpression }

// fromNowUnits are the components of a time expression in the only order
// they may appear, each with its spellings and length in seconds (a month
// is 30 days and a year 365, as taskcluster-client counts them).
var fromNowUnits = [...]struct {
	words   []string
	seconds int64
}{
	{[]string{"y", "yr", "year", "years"}, 365 * 86400},
	{[]string{"mo", "month", "months"}, 30 * 86400},
	{[]string{"w", "wk", "week", "weeks"}, 7 * 86400},
	{[]string{"d", "day", "days"}, 86400},
	{[]string{"h", "hr", "hour", "hours"}, 3600},
	{[]string{"m", "min", "minute", "minutes"}, 60},
	{[]string{"s", "sec", "second", "seconds"}, 1},
}

// jsDateLimitMs is the largest distance from the epoch a JavaScript Date
// holds (±8.64e15 ms); beyond it fromNow yields an Invalid Date.
const jsDateLimitMs = 8_640_000_000_000_000

// FromNow is taskcluster-client's fromNow: now shifted by a relative time
// such as "1 year", "- 15 min" or "1d2h3min". The grammar is that of its
// regular expression
//
//	^(\s*[-+])? (\s*N\s*(y|year|years|yr))? (\s*N\s*(months|month|mo))?
//	(\s*N\s*(weeks|week|wk|w))? (\s*N\s*(days|day|d))?
//	(\s*N\s*(hours|hour|hr|h))? (\s*N\s*(minutes|minute|min|m))?
//	(\s*N\s*(seconds|second|sec|s))? \s*$
//
// with N = [0-9]+, units case-insensitive (ASCII only, as a JavaScript
// regular expression without the u flag) and \s JavaScript's whitespace.
// Every component is optional, so "" and "-" mean now, as in the
// reference. [quirk rejected] where the reference silently yields an
// Invalid Date (a result beyond a JavaScript Date's range), FromNow
// refuses with the same error as for a malformed expression.
func FromNow(s string, now time.Time) (time.Time, error) {
	offset, ok := parseFromNow(s)
	if !ok {
		return time.Time{}, &TimeExpressionError{Input: s}
	}
	secs := now.Unix() + offset
	if ms := secs * 1000; ms > jsDateLimitMs || ms < -jsDateLimitMs {
		return time.Time{}, &TimeExpressionError{Input: s}
	}
	return time.Unix(secs, int64(now.Nanosecond())).In(now.Location()), nil
}

// parseFromNow returns the offset in seconds. Offsets are bounded well
// inside int64 (twice a JavaScript Date's range) so no sum can overflow.
func parseFromNow(s string) (int64, bool) {
	const limit = 2 * jsDateLimitMs / 1000
	p := fromNowScanner{s: s}
	p.space()
	sign := int64(1)
	if c, ok := p.peek(); ok && (c == '-' || c == '+') {
		if c == '-' {
			sign = -1
		}
		p.i++
	}
	var total int64
	next := 0 // the first unit still allowed
	for {
		p.space()
		if p.done() {
			return sign * total, true
		}
		n, ok := p.number()
		if !ok {
			return 0, false
		}
		p.space()
		word := p.word()
		u := unitIndex(word, next)
		if u < 0 || n > limit/fromNowUnits[u].seconds {
			return 0, false
		}
		total += n * fromNowUnits[u].seconds
		if total > limit {
			return 0, false
		}
		next = u + 1
	}
}

// unitIndex finds word among the spellings of units from..end. Skipping
// units is allowed; going back is not (the components are ordered).
func unitIndex(word string, from int) int {
	for u := from; u < len(fromNowUnits); u++ {
		for _, w := range fromNowUnits[u].words {
			if strings.EqualFold(word, w) {
				return u
			}
		}
	}
	return -1
}

type fromNowScanner struct {
	s string
	i int
}

func (p *fromNowScanner) done() bool { return p.i >= len(p.s) }

func (p *fromNowScanner) peek() (byte, bool) {
	if p.done() {
		return 0, false
	}
	return p.s[p.i], true
}

// space skips JavaScript's \s.
func (p *fromNowScanner) space() {
	for !p.done() {
		r, size := utf8.DecodeRuneInString(p.s[p.i:])
		if !jsSpace(r) || (r == utf8.RuneError && size == 1) {
			return
		}
		p.i += size
	}
}

// number reads [0-9]+. A value beyond every range (more than 15
// significant digits) reads as an impossible one so the caller refuses it.
func (p *fromNowScanner) number() (int64, bool) {
	start := p.i
	for c, ok := p.peek(); ok && c >= '0' && c <= '9'; c, ok = p.peek() {
		p.i++
	}
	digits := strings.TrimLeft(p.s[start:p.i], "0")
	if p.i == start {
		return 0, false
	}
	if len(digits) > 15 {
		return 1 << 62, true
	}
	if digits == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil
}

// word reads a run of ASCII letters: a unit must be followed by
// whitespace, a digit or the end, so the whole run must name it.
func (p *fromNowScanner) word() string {
	start := p.i
	for c, ok := p.peek(); ok && (c|0x20) >= 'a' && (c|0x20) <= 'z'; c, ok = p.peek() {
		p.i++
	}
	return p.s[start:p.i]
}

// jsSpace is JavaScript's \s (WhiteSpace and LineTerminator): unlike
// unicode.IsSpace it includes U+FEFF and excludes U+0085.
func jsSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}
