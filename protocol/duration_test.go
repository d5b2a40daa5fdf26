package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func TestParseDuration(t *testing.T) {
	const (
		notDuration = "is not a duration: want e.g."
		noUnit      = "is not a duration: a number needs a unit"
		tooLong     = "is too long for a duration (at most 292 years)"
	)
	tests := []struct {
		in   string
		want time.Duration
		err  string // a part of the message; "" = accepted
	}{
		// Go durations
		{"90s", 90 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1.5h", 90 * time.Minute, ""},
		{"-5m", -5 * time.Minute, ""},
		{"300ms", 300 * time.Millisecond, ""},
		{" 15m ", 15 * time.Minute, ""},
		{"0", 0, ""},
		{"+0", 0, ""},
		{"0s", 0, ""},
		{"2562047h", 2562047 * time.Hour, ""},
		// fromNow expressions
		{"30 days", 30 * day, ""},
		{"1 year", 365 * day, ""},
		{"2 months", 60 * day, ""},
		{"2h", 2 * time.Hour, ""},
		{"1d2h3min", 26*time.Hour + 3*time.Minute, ""},
		{"1 day 2 hours 3 min", 26*time.Hour + 3*time.Minute, ""},
		{"1h 30m", 90 * time.Minute, ""}, // a space: not Go's, fromNow's
		{"1 y 1 mo 1 w 1 d 1 h 1 m 1 s", 403*day + time.Hour + time.Minute + time.Second, ""},
		{"7 DAYS", 7 * day, ""},
		{"- 1 hour", -time.Hour, ""},
		{"-15 min", -15 * time.Minute, ""},
		{"+ 2 weeks", 14 * day, ""},
		{"1\u00a0d", day, ""}, // JavaScript's \s includes NBSP
		{"0 days", 0, ""},
		{"292 years", 292 * 365 * day, ""},
		{"- 292 years", -292 * 365 * day, ""},
		{"9223372036 s", 9223372036 * time.Second, ""}, // the last whole second
		// refused
		{"", 0, notDuration},
		{"-", 0, notDuration},
		{"   ", 0, notDuration},
		{"5 fortnights", 0, notDuration},
		{"days 30", 0, notDuration},
		{"a week", 0, notDuration},
		{"often", 0, notDuration},
		{"1m1mo", 0, notDuration}, // fromNow's units go from years down
		{"1.5 hours", 0, notDuration},
		{"5", 0, noUnit},
		{"-5", 0, noUnit},
		{"1.5", 0, noUnit},
		{"00", 0, noUnit},
		{"300 years", 0, tooLong},
		{"- 300 years", 0, tooLong},
		{"9223372037 s", 0, tooLong},
		{"3000000h", 0, tooLong}, // past Go's range, so read (and refused) as fromNow
		{"99999999999999999999 s", 0, notDuration},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("%q ", tc.in)) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseDuration(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
}

func TestDurationText(t *testing.T) {
	for _, want := range []time.Duration{0, time.Nanosecond, 90 * time.Second, 7 * day, -time.Hour, 292 * 365 * day} {
		b, err := Duration(want).MarshalText()
		if err != nil || string(b) != want.String() {
			t.Errorf("MarshalText(%v) = %q, %v", want, b, err)
		}
		var d Duration
		if err := d.UnmarshalText(b); err != nil || time.Duration(d) != want {
			t.Errorf("UnmarshalText(%q) = %v, %v", b, d, err)
		}
	}
	d := Duration(time.Minute)
	if err := d.UnmarshalText([]byte("5")); err == nil || time.Duration(d) != time.Minute {
		t.Errorf("UnmarshalText(5): %v, left %v", err, d)
	}
	if s := fmt.Sprint(Duration(36 * time.Hour)); s != "36h0m0s" {
		t.Errorf("String: %s", s)
	}
}

// encoding/json uses the TextUnmarshaler for a string and refuses a
// number, as the doc comment of Duration says.
func TestDurationJSON(t *testing.T) {
	var v struct{ D Duration }
	if err := json.Unmarshal([]byte(`{"D":"30 days"}`), &v); err != nil || time.Duration(v.D) != 30*day {
		t.Errorf("string: %v %v", v.D, err)
	}
	if err := json.Unmarshal([]byte(`{"D":5}`), &v); err == nil {
		t.Errorf("a JSON number was accepted: %v", v.D)
	}
	if b, err := json.Marshal(v); err != nil || string(b) != `{"D":"720h0m0s"}` {
		t.Errorf("Marshal: %s %v", b, err)
	}
}

// FuzzParseDuration: ParseDuration never panics; it accepts what
// time.ParseDuration accepts, with the same value, and otherwise exactly
// the fromNow expressions with an amount that fit a time.Duration, with
// FromNow's offset; its errors quote the input; what it accepts survives
// a MarshalText/UnmarshalText round trip.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "1.5h", "0", "5", "", "-", "30 days", "- 1 hour", "1d2h3min", "1 y 1 mo 1 w 1 d 1 h 1 m 1 s",
		"292 years", "300 years", "9223372036 s", "3000000h", "1\u00a0d", "a week", "1m1mo"} {
		f.Add(s)
	}
	epoch := time.Unix(0, 0)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDuration(s)
		if goD, goErr := time.ParseDuration(strings.TrimSpace(s)); goErr == nil {
			if err != nil || got != goD {
				t.Fatalf("ParseDuration(%q) = %v, %v; time.ParseDuration gives %v", s, got, err, goD)
			}
		} else {
			at, fnErr := FromNow(s, epoch)
			secs := at.Unix()
			want := fnErr == nil && strings.ContainsAny(s, "0123456789") && secs <= maxDurationSeconds && secs >= -maxDurationSeconds
			switch {
			case want && (err != nil || got != at.Sub(epoch)):
				t.Fatalf("ParseDuration(%q) = %v, %v; FromNow gives %v", s, got, err, at.Sub(epoch))
			case !want && err == nil:
				t.Fatalf("ParseDuration(%q) = %v; want an error", s, got)
			}
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("%q is ", s)) || got != 0 {
				t.Fatalf("ParseDuration(%q) = %v, %q", s, got, err)
			}
			return
		}
		b, _ := Duration(got).MarshalText()
		var back Duration
		if err := back.UnmarshalText(b); err != nil || time.Duration(back) != got {
			t.Fatalf("round trip of %v through %q: %v, %v", got, b, back, err)
		}
	})
}
