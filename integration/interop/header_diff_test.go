package interop

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tcauth/tcauth/protocol"
)

// headerGen builds Authorization headers near the edges of hawk@9's grammar
// (docs/protocol.md §2): scheme case and spelling, every kind of separator including
// JavaScript-only whitespace, unknown/duplicate/empty attributes, quotes and
// backslashes inside values, non-ASCII, line terminators and lengths around
// the 4096 limit.
type headerGen struct{ r *rand.Rand }

var (
	hdrSchemes = []string{"Hawk", "hawk", "HAWK", "Hawk", "Hawk", "Basic", "Hawk2", "Ha wk", "", "Hawk_"}
	hdrSeps    = []string{" ", " ", " ", "  ", "\t", "\u00a0", "\u2003", "\ufeff", "", "\n", "\u2028"}
	hdrNames   = []string{"id", "ts", "nonce", "mac", "hash", "ext", "app", "dlg", "id", "ts", "nonce", "mac", "foo", "Id", "_"}
	hdrCommas  = []string{", ", ",", ", ", " , ", ",,", "", " ", ",\t", ",\u00a0", ";"}
	hdrValues  = []string{"abc", "1700000000", "x y", "a=b", "Zm9v+/==", "!#$%&'()*+,-./:;<=>?@[]^`{|}~", "1e3", " lead", "trail "}
	hdrBad     = []string{"", "é", "a\"b", "a\\b", "tab\there", "\u2028", "😀"}
)

func (g headerGen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g headerGen) value() string {
	if g.r.IntN(4) == 0 {
		return g.pick(hdrBad)
	}
	return g.pick(hdrValues)
}

func (g headerGen) header() string {
	var b strings.Builder
	// Mostly a good scheme and separator, so the attribute rules get exercised.
	if g.r.IntN(4) == 0 {
		b.WriteString(g.pick(hdrSchemes))
	} else {
		b.WriteString("Hawk")
	}
	if g.r.IntN(12) == 0 {
		return b.String() // scheme only
	}
	if g.r.IntN(4) == 0 {
		b.WriteString(g.pick(hdrSeps))
	} else {
		b.WriteString(" ")
	}
	n := g.r.IntN(5)
	if g.r.IntN(2) == 0 {
		if g.r.IntN(2) == 0 {
			n = 0 // the core alone
		}
		// A well-formed core in random order, so successes are common:
		// each known attribute once (the required ones usually), good values.
		names := []string{"id", "ts", "nonce", "mac", "hash", "ext", "app", "dlg"}
		g.r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		first := true
		for _, name := range names {
			required := name == "id" || name == "ts" || name == "nonce" || name == "mac"
			if required && g.r.IntN(20) == 0 || !required && g.r.IntN(3) != 0 {
				continue
			}
			if !first {
				b.WriteString(g.pick([]string{", ", ",", ",  ", " , "}))
			}
			first = false
			b.WriteString(name + `="` + g.pick(hdrValues) + `"`)
		}
		if n > 0 {
			b.WriteString(g.pick(hdrCommas))
		}
	}
	for i := 0; i < n; i++ {
		b.WriteString(g.pick(hdrNames))
		switch g.r.IntN(10) {
		case 0:
			b.WriteString(`=`) // unquoted
			b.WriteString(g.value())
		case 1:
			b.WriteString(`="`) // unterminated
			b.WriteString(g.value())
		default:
			b.WriteString(`="`)
			b.WriteString(g.value())
			b.WriteString(`"`)
		}
		if i < n-1 || g.r.IntN(4) == 0 {
			b.WriteString(g.pick(hdrCommas))
		}
	}
	if g.r.IntN(8) == 0 {
		b.WriteString(g.pick(hdrSeps))
	}
	if g.r.IntN(10) == 0 {
		// Pad to 4090..4101 UTF-16 code units (JavaScript's length, which
		// hawk limits) with characters of one unit but one or two bytes.
		pad := "a"
		if g.r.IntN(3) == 0 {
			pad = "é"
		}
		have := utf16Units(b.String()) + len(`, ext=""`)
		b.WriteString(`, ext="` + strings.Repeat(pad, max(0, 4090+g.r.IntN(12)-have)) + `"`)
	}
	return b.String()
}

// utf16Units is JavaScript's String.length of s.
func utf16Units(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// brief shortens a long header for a failure message.
func brief(h string) string {
	if len(h) <= 160 {
		return strconv.Quote(h)
	}
	cut := 120
	for !utf8.RuneStart(h[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…(%d UTF-16 units, %d bytes)", h[:cut], utf16Units(h), len(h))
}

// The header parser against hawk@9's, the Hawk of Taskcluster's auth
// service: the same headers accepted with the same attributes, the same
// rejections with the same auth-failed message.
func TestHeaderParserMatchesHawk9(t *testing.T) {
	requireNode(t)
	seed := diffSeed(t)
	t.Logf("seed %d (rerun with TCAUTH_INTEROP_SEED=%d)", seed, seed)
	g := headerGen{rand.New(rand.NewPCG(seed, 0x4a3c))}
	n := 3000
	if testing.Short() {
		n = 500
	}
	headers := make([]string, 0, n)
	seen := map[string]bool{}
	for len(headers) < n {
		h := g.header()
		if h == "" || seen[h] { // no header at all is "no-auth", never parsed
			continue
		}
		seen[h] = true
		headers = append(headers, h)
	}
	cases := make([]any, len(headers))
	for i, h := range headers {
		cases[i] = map[string]any{"op": "parseHeader", "header": h}
	}
	out := runNode(t, "hawk.js", cases)
	accepted, failures := 0, 0
	messages := map[string]int{}
	for i, h := range headers {
		var ref struct {
			OK         bool
			Message    string
			Attributes map[string]string
		}
		out[i].value(t, "parseHeader", &ref)
		got, err := protocol.ParseHeader(h)
		if ref.OK {
			accepted++
			want := protocol.Header{ID: ref.Attributes["id"], TS: ref.Attributes["ts"], Nonce: ref.Attributes["nonce"],
				Hash: ref.Attributes["hash"], Ext: ref.Attributes["ext"], MAC: ref.Attributes["mac"],
				App: ref.Attributes["app"], Dlg: ref.Attributes["dlg"]}
			if err != nil || got != want {
				failures++
				if failures <= 10 {
					t.Errorf("seed %d: %s: hawk@9 accepts %+v; ParseHeader gives %+v, %v", seed, brief(h), want, got, err)
				}
			}
			continue
		}
		messages[ref.Message]++
		if err == nil || err.Error() != ref.Message {
			failures++
			if failures <= 10 {
				t.Errorf("seed %d: %s: hawk@9 says %q; ParseHeader gives %v", seed, brief(h), ref.Message, err)
			}
		}
	}
	t.Logf("%d headers: %d accepted by hawk@9, rejections by message: %v", len(headers), accepted, messages)
}
