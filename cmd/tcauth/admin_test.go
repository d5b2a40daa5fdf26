package main

import (
	"testing"
	"time"
)

func TestParseExpires(t *testing.T) {
	now := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "2030-01-02T03:04:05.000Z", want: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)},
		{in: "1 year", want: now.AddDate(1, 0, 0)},
		{in: "30 days", want: now.AddDate(0, 0, 30)},
		{in: "2 weeks", want: now.AddDate(0, 0, 14)},
		{in: "1 month", want: now.AddDate(0, 0, 30)}, // fromNow: a month is 30 days
		{in: "- 15 min", want: now.Add(-15 * time.Minute)},
		{in: "1d2h3min", want: now.Add(26*time.Hour + 3*time.Minute)},
		{in: "1 year 2 weeks", want: now.AddDate(0, 0, 365+14)},
		{in: "12h", want: now.Add(12 * time.Hour)},
		{in: "-1 hour", want: now.Add(-time.Hour)},
		{in: "90 minutes", want: now.Add(90 * time.Minute)},
		{in: "5s", want: now.Add(5 * time.Second)},
		{in: "soon", bad: true},
		{in: "1 fortnight", bad: true},
		{in: "", bad: true},
		{in: "-", bad: true},
		{in: "2h 1d", bad: true}, // components in fromNow's order only
	}
	for _, tc := range tests {
		got, err := parseExpires(tc.in, now)
		if tc.bad {
			if err == nil || exitCode(err) != 2 {
				t.Errorf("%q: want bad input, got %v, %v", tc.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q: got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
