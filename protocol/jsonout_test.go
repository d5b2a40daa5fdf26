package protocol

import (
	"strings"
	"testing"
	"time"
)

func TestUnescapeHTML(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"a\u003c..\u003eb"`, `"a<..>b"`},
		{`"x\u0026y"`, `"x&y"`},
		{`"\\u003c"`, `"\\u003c"`}, // an escaped backslash, then text
		{`"\\\u003c"`, `"\\<"`},    // escaped backslash, then an escape
		{`"plain \u00e9"`, `"plain \u00e9"`},
	} {
		if got := string(UnescapeHTML([]byte(tc.in))); got != tc.want {
			t.Errorf("UnescapeHTML(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// Marshal and MarshalIndent leave <, > and & alone, also inside the output
// of this package's MarshalJSON methods.
func TestMarshalNoHTMLEscapes(t *testing.T) {
	v := map[string]any{
		"plain":  "notes:write:<..>/*&",
		"method": Client{ClientID: "a<b>", ExpandedScopes: []string{"x&y"}, Expires: time.Unix(0, 0)},
		"error":  NewAPIError(CodeInputError, "bad <scope> & more").Body("m", nil, nil, time.Unix(0, 0)),
	}
	for name, f := range map[string]func(any) ([]byte, error){"Marshal": Marshal, "MarshalIndent": MarshalIndent} {
		b, err := f(v)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.Contains(s, `\u00`) || !strings.Contains(s, "notes:write:<..>/*&") || !strings.Contains(s, "bad <scope> & more") {
			t.Errorf("%s: %s", name, s)
		}
	}
}
