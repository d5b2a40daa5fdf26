package login

import (
	"fmt"
	"strings"
)

// A small GraphQL (October 2021 spec) lexer and parser for POST /graphql.
// It reads every executable document a front end may send — named or
// anonymous operations, variable definitions, aliases, arguments,
// directives, fragments and inline fragments — so that what tcauth does not
// serve gets a precise error instead of a syntax error, and it is bounded:
// at most gqlMaxTokens tokens and gqlMaxDepth nested selection sets or
// values, so a hostile document costs little.
const (
	gqlMaxBody   = 64 << 10
	gqlMaxTokens = 2000
	gqlMaxDepth  = 12
)

type gqlTokKind uint8

const (
	tokEOF gqlTokKind = iota
	tokPunct
	tokName
	tokNumber
	tokString
)

type gqlToken struct {
	kind      gqlTokKind
	val       string
	line, col int
}

// gqlSyntaxError is a parse failure with its location.
type gqlSyntaxError struct {
	msg       string
	line, col int
}

func (e *gqlSyntaxError) Error() string { return "Syntax Error: " + e.msg }

// gqlLex splits src into tokens (comments, commas, white space and the
// BOM are ignored, as the spec says).
func gqlLex(src string) ([]gqlToken, error) {
	lx := lexer{src: src, line: 1, lineStart: 0}
	var toks []gqlToken
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tokEOF {
			return toks, nil
		}
		if len(toks) > gqlMaxTokens {
			return nil, &gqlSyntaxError{fmt.Sprintf("Document contains more than %d tokens.", gqlMaxTokens), t.line, t.col}
		}
	}
}

type lexer struct {
	src             string
	pos, line       int
	lineStart       int
	tokLine, tokCol int
}

func (lx *lexer) errf(format string, a ...any) error {
	return &gqlSyntaxError{fmt.Sprintf(format, a...), lx.line, lx.pos - lx.lineStart + 1}
}

func (lx *lexer) newline(width int) {
	lx.pos += width
	lx.line++
	lx.lineStart = lx.pos
}

// skipIgnored skips white space, line terminators, commas, comments, BOM.
func (lx *lexer) skipIgnored() {
	for lx.pos < len(lx.src) {
		switch c := lx.src[lx.pos]; {
		case c == ' ' || c == '\t' || c == ',':
			lx.pos++
		case c == '\n':
			lx.newline(1)
		case c == '\r':
			if strings.HasPrefix(lx.src[lx.pos:], "\r\n") {
				lx.newline(2)
			} else {
				lx.newline(1)
			}
		case c == '#':
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' && lx.src[lx.pos] != '\r' {
				lx.pos++
			}
		case strings.HasPrefix(lx.src[lx.pos:], "\uFEFF"):
			lx.pos += len("\uFEFF")
		default:
			return
		}
	}
}

func (lx *lexer) next() (gqlToken, error) {
	lx.skipIgnored()
	line, col := lx.line, lx.pos-lx.lineStart+1
	tok := func(k gqlTokKind, v string) (gqlToken, error) { return gqlToken{k, v, line, col}, nil }
	if lx.pos >= len(lx.src) {
		return tok(tokEOF, "")
	}
	c := lx.src[lx.pos]
	switch {
	case strings.IndexByte("!$&():=@[]{}|", c) >= 0:
		lx.pos++
		return tok(tokPunct, string(c))
	case c == '.':
		if strings.HasPrefix(lx.src[lx.pos:], "...") {
			lx.pos += 3
			return tok(tokPunct, "...")
		}
		return gqlToken{}, lx.errf("Unexpected \".\".")
	case c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
		start := lx.pos
		for lx.pos < len(lx.src) && isNameByte(lx.src[lx.pos]) {
			lx.pos++
		}
		return tok(tokName, lx.src[start:lx.pos])
	case c == '-' || c >= '0' && c <= '9':
		v, err := lx.number()
		if err != nil {
			return gqlToken{}, err
		}
		return tok(tokNumber, v)
	case c == '"':
		v, err := lx.str()
		if err != nil {
			return gqlToken{}, err
		}
		return tok(tokString, v)
	}
	return gqlToken{}, lx.errf("Unexpected character %q.", rune(c))
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

func (lx *lexer) digits() int {
	n := 0
	for lx.pos < len(lx.src) && lx.src[lx.pos] >= '0' && lx.src[lx.pos] <= '9' {
		lx.pos++
		n++
	}
	return n
}

// number reads IntValue or FloatValue; a name or "." right after it is an
// error, as the spec requires.
func (lx *lexer) number() (string, error) {
	start := lx.pos
	if lx.src[lx.pos] == '-' {
		lx.pos++
	}
	if lx.pos < len(lx.src) && lx.src[lx.pos] == '0' {
		lx.pos++
		if lx.pos < len(lx.src) && lx.src[lx.pos] >= '0' && lx.src[lx.pos] <= '9' {
			return "", lx.errf("Invalid number, unexpected digit after 0.")
		}
	} else if lx.digits() == 0 {
		return "", lx.errf("Invalid number, expected digit.")
	}
	if lx.pos < len(lx.src) && lx.src[lx.pos] == '.' {
		lx.pos++
		if lx.digits() == 0 {
			return "", lx.errf("Invalid number, expected digit.")
		}
	}
	if lx.pos < len(lx.src) && (lx.src[lx.pos] == 'e' || lx.src[lx.pos] == 'E') {
		lx.pos++
		if lx.pos < len(lx.src) && (lx.src[lx.pos] == '+' || lx.src[lx.pos] == '-') {
			lx.pos++
		}
		if lx.digits() == 0 {
			return "", lx.errf("Invalid number, expected digit.")
		}
	}
	if lx.pos < len(lx.src) && (isNameByte(lx.src[lx.pos]) || lx.src[lx.pos] == '.') {
		return "", lx.errf("Invalid number, unexpected %q.", rune(lx.src[lx.pos]))
	}
	return lx.src[start:lx.pos], nil
}

// str reads a string or block string; the value is not needed by any
// field tcauth serves, so escapes are checked, not decoded.
func (lx *lexer) str() (string, error) {
	if strings.HasPrefix(lx.src[lx.pos:], `"""`) {
		lx.pos += 3
		start := lx.pos
		for lx.pos < len(lx.src) {
			switch {
			case strings.HasPrefix(lx.src[lx.pos:], `\"""`):
				lx.pos += 4
			case strings.HasPrefix(lx.src[lx.pos:], `"""`):
				v := lx.src[start:lx.pos]
				lx.pos += 3
				return v, nil
			case lx.src[lx.pos] == '\n':
				lx.newline(1)
			default:
				lx.pos++
			}
		}
		return "", lx.errf("Unterminated string.")
	}
	lx.pos++
	start := lx.pos
	for lx.pos < len(lx.src) {
		switch c := lx.src[lx.pos]; {
		case c == '"':
			lx.pos++
			return lx.src[start : lx.pos-1], nil
		case c == '\n' || c == '\r':
			return "", lx.errf("Unterminated string.")
		case c == '\\':
			if lx.pos+1 >= len(lx.src) {
				return "", lx.errf("Unterminated string.")
			}
			e := lx.src[lx.pos+1]
			switch {
			case strings.IndexByte(`"\/bfnrt`, e) >= 0:
				lx.pos += 2
			case e == 'u' && lx.pos+6 <= len(lx.src) && isHex4(lx.src[lx.pos+2:lx.pos+6]):
				lx.pos += 6
			default:
				return "", lx.errf("Invalid character escape sequence.")
			}
		case c < 0x20 && c != '\t':
			return "", lx.errf("Invalid character within String.")
		default:
			lx.pos++
		}
	}
	return "", lx.errf("Unterminated string.")
}

func isHex4(s string) bool {
	for i := 0; i < 4; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// The document.
type gqlDoc struct {
	ops   []*gqlOp
	frags map[string]*gqlFrag
}

type gqlOp struct {
	kind      string // query, mutation, subscription
	name      string
	sel       []gqlSel
	line, col int
}

type gqlFrag struct {
	name, on  string
	sel       []gqlSel
	line, col int
}

// gqlSel is a field ('f'), fragment spread ('s') or inline fragment ('i').
type gqlSel struct {
	kind             byte
	alias, name, on  string
	hasArgs, hasDirs bool
	sel              []gqlSel
	hasSel           bool
	line, col        int
}

type parser struct {
	toks  []gqlToken
	i     int
	depth int
}

func (p *parser) peek() gqlToken { return p.toks[p.i] }
func (p *parser) advance() gqlToken {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) is(kind gqlTokKind, val string) bool {
	t := p.peek()
	return t.kind == kind && (val == "" || t.val == val)
}

func (p *parser) unexpected() error {
	t := p.peek()
	if t.kind == tokEOF {
		return &gqlSyntaxError{"Unexpected <EOF>.", t.line, t.col}
	}
	return &gqlSyntaxError{fmt.Sprintf("Unexpected %q.", t.val), t.line, t.col}
}

func (p *parser) expect(kind gqlTokKind, val string) (gqlToken, error) {
	if !p.is(kind, val) {
		return gqlToken{}, p.unexpected()
	}
	return p.advance(), nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > gqlMaxDepth {
		t := p.peek()
		return &gqlSyntaxError{fmt.Sprintf("Document nests deeper than %d levels.", gqlMaxDepth), t.line, t.col}
	}
	return nil
}

// gqlParse parses an executable document.
func gqlParse(src string) (*gqlDoc, error) {
	toks, err := gqlLex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	doc := &gqlDoc{frags: map[string]*gqlFrag{}}
	if p.is(tokEOF, "") {
		return nil, p.unexpected()
	}
	for !p.is(tokEOF, "") {
		if err := p.definition(doc); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

func (p *parser) definition(doc *gqlDoc) error {
	t := p.peek()
	switch {
	case t.kind == tokPunct && t.val == "{":
		sel, err := p.selectionSet()
		if err != nil {
			return err
		}
		doc.ops = append(doc.ops, &gqlOp{kind: "query", sel: sel, line: t.line, col: t.col})
		return nil
	case t.kind == tokName && (t.val == "query" || t.val == "mutation" || t.val == "subscription"):
		return p.operation(doc)
	case t.kind == tokName && t.val == "fragment":
		return p.fragment(doc)
	}
	return p.unexpected()
}

func (p *parser) operation(doc *gqlDoc) error {
	t := p.advance()
	op := &gqlOp{kind: t.val, line: t.line, col: t.col}
	if p.is(tokName, "") {
		op.name = p.advance().val
	}
	if p.is(tokPunct, "(") {
		if err := p.variableDefinitions(); err != nil {
			return err
		}
	}
	if _, err := p.directives(); err != nil {
		return err
	}
	sel, err := p.selectionSet()
	if err != nil {
		return err
	}
	op.sel = sel
	doc.ops = append(doc.ops, op)
	return nil
}

func (p *parser) fragment(doc *gqlDoc) error {
	t := p.advance()
	name, err := p.expect(tokName, "")
	if err != nil {
		return err
	}
	if name.val == "on" {
		return &gqlSyntaxError{`Unexpected Name "on".`, name.line, name.col}
	}
	if _, err := p.expect(tokName, "on"); err != nil {
		return err
	}
	on, err := p.expect(tokName, "")
	if err != nil {
		return err
	}
	if _, err := p.directives(); err != nil {
		return err
	}
	sel, err := p.selectionSet()
	if err != nil {
		return err
	}
	if _, dup := doc.frags[name.val]; dup {
		return &gqlSyntaxError{fmt.Sprintf("There can be only one fragment named %q.", name.val), t.line, t.col}
	}
	doc.frags[name.val] = &gqlFrag{name: name.val, on: on.val, sel: sel, line: t.line, col: t.col}
	return nil
}

// variableDefinitions: ( $name : Type [= default] [directives] )+
func (p *parser) variableDefinitions() error {
	p.advance()
	for {
		if _, err := p.expect(tokPunct, "$"); err != nil {
			return err
		}
		if _, err := p.expect(tokName, ""); err != nil {
			return err
		}
		if _, err := p.expect(tokPunct, ":"); err != nil {
			return err
		}
		if err := p.typeRef(); err != nil {
			return err
		}
		if p.is(tokPunct, "=") {
			p.advance()
			if err := p.value(true); err != nil {
				return err
			}
		}
		if _, err := p.directives(); err != nil {
			return err
		}
		if p.is(tokPunct, ")") {
			p.advance()
			return nil
		}
	}
}

func (p *parser) typeRef() error {
	if err := p.enter(); err != nil {
		return err
	}
	defer func() { p.depth-- }()
	if p.is(tokPunct, "[") {
		p.advance()
		if err := p.typeRef(); err != nil {
			return err
		}
		if _, err := p.expect(tokPunct, "]"); err != nil {
			return err
		}
	} else if _, err := p.expect(tokName, ""); err != nil {
		return err
	}
	if p.is(tokPunct, "!") {
		p.advance()
	}
	return nil
}

// value parses (and discards) a value; const forbids variables.
func (p *parser) value(isConst bool) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer func() { p.depth-- }()
	t := p.peek()
	switch {
	case t.kind == tokPunct && t.val == "$" && !isConst:
		p.advance()
		_, err := p.expect(tokName, "")
		return err
	case t.kind == tokNumber || t.kind == tokString:
		p.advance()
		return nil
	case t.kind == tokName:
		p.advance() // true, false, null or an enum value
		return nil
	case t.kind == tokPunct && t.val == "[":
		p.advance()
		for !p.is(tokPunct, "]") {
			if err := p.value(isConst); err != nil {
				return err
			}
		}
		p.advance()
		return nil
	case t.kind == tokPunct && t.val == "{":
		p.advance()
		for !p.is(tokPunct, "}") {
			if _, err := p.expect(tokName, ""); err != nil {
				return err
			}
			if _, err := p.expect(tokPunct, ":"); err != nil {
				return err
			}
			if err := p.value(isConst); err != nil {
				return err
			}
		}
		p.advance()
		return nil
	}
	return p.unexpected()
}

func (p *parser) arguments() (bool, error) {
	if !p.is(tokPunct, "(") {
		return false, nil
	}
	p.advance()
	for {
		if _, err := p.expect(tokName, ""); err != nil {
			return true, err
		}
		if _, err := p.expect(tokPunct, ":"); err != nil {
			return true, err
		}
		if err := p.value(false); err != nil {
			return true, err
		}
		if p.is(tokPunct, ")") {
			p.advance()
			return true, nil
		}
	}
}

func (p *parser) directives() (bool, error) {
	found := false
	for p.is(tokPunct, "@") {
		found = true
		p.advance()
		if _, err := p.expect(tokName, ""); err != nil {
			return true, err
		}
		if _, err := p.arguments(); err != nil {
			return true, err
		}
	}
	return found, nil
}

func (p *parser) selectionSet() ([]gqlSel, error) {
	if _, err := p.expect(tokPunct, "{"); err != nil {
		return nil, err
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	var out []gqlSel
	for {
		s, err := p.selection()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if p.is(tokPunct, "}") {
			p.advance()
			return out, nil
		}
	}
}

func (p *parser) selection() (gqlSel, error) {
	t := p.peek()
	if t.kind == tokPunct && t.val == "..." {
		return p.fragmentSelection()
	}
	name, err := p.expect(tokName, "")
	if err != nil {
		return gqlSel{}, err
	}
	s := gqlSel{kind: 'f', name: name.val, alias: name.val, line: name.line, col: name.col}
	if p.is(tokPunct, ":") {
		p.advance()
		n, err := p.expect(tokName, "")
		if err != nil {
			return gqlSel{}, err
		}
		s.name = n.val
	}
	if s.hasArgs, err = p.arguments(); err != nil {
		return gqlSel{}, err
	}
	if s.hasDirs, err = p.directives(); err != nil {
		return gqlSel{}, err
	}
	if p.is(tokPunct, "{") {
		s.hasSel = true
		if s.sel, err = p.selectionSet(); err != nil {
			return gqlSel{}, err
		}
	}
	return s, nil
}

func (p *parser) fragmentSelection() (gqlSel, error) {
	t := p.advance()
	s := gqlSel{line: t.line, col: t.col}
	var err error
	if p.is(tokName, "") && !p.is(tokName, "on") {
		s.kind, s.name = 's', p.advance().val
		s.hasDirs, err = p.directives()
		return s, err
	}
	s.kind = 'i'
	if p.is(tokName, "on") {
		p.advance()
		on, err := p.expect(tokName, "")
		if err != nil {
			return gqlSel{}, err
		}
		s.on = on.val
	}
	if s.hasDirs, err = p.directives(); err != nil {
		return gqlSel{}, err
	}
	s.hasSel = true
	s.sel, err = p.selectionSet()
	return s, err
}
