package webui

// Pure scope logic behind the roles pages and the scope inspector: parsing
// the textarea and expression inputs (bounded), the "what does this change
// add/remove" diff of two expanded sets, set comparison and the holder
// match. Nothing here calls the API; the handlers feed it sets that the
// API expanded with the user's own credentials.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tcauth/tcauth/scopeengine"
)

// Input bounds. The algebra has no limits, but a page must: these keep one
// request's work (and a GET URL that links to a result) small.
const (
	// MaxScopeLength is the longest scope accepted in any input.
	MaxScopeLength = 4096
	// MaxRoleScopes / MaxRoleScopeText bound a role's scope textarea
	// (a POST form; the API itself accepts 10 MB bodies).
	MaxRoleScopes    = 2000
	MaxRoleScopeText = 256 << 10
	// MaxInspectorScopes / MaxInspectorText bound each scope set of the
	// inspector. Its forms are GET so that results can be linked, and URLs
	// beyond ~64 kB are refused by common proxies.
	MaxInspectorScopes = 500
	MaxInspectorText   = 16 << 10
	// MaxExprText / MaxExprNodes bound the expression input.
	MaxExprText  = 16 << 10
	MaxExprNodes = 1000
	// MaxDescription is the API's limit on a role description.
	MaxDescription = 10240
)

// Sentinel errors for bad form input; the messages shown wrap them.
var (
	ErrInputTooLarge  = errors.New("input too large")
	ErrInvalidScope   = errors.New("invalid scope")
	ErrInvalidExprIn  = errors.New("invalid scope expression")
	ErrEmptyInput     = errors.New("empty input")
	ErrDoubleStarRole = errors.New("scopes must not end with `**`")
)

// scopeLimits bounds one scope textarea.
type scopeLimits struct{ maxScopes, maxText int }

var (
	roleLimits      = scopeLimits{MaxRoleScopes, MaxRoleScopeText}
	inspectorLimits = scopeLimits{MaxInspectorScopes, MaxInspectorText}
)

// parseScopeLines reads one scope per line. Lines are trimmed of
// surrounding whitespace and blank lines skipped, as the Taskcluster UI's
// editor does (a stray trailing space in a textarea would otherwise become
// part of a scope nobody can see). Duplicates are dropped keeping the first
// occurrence (the API's scope lists must be unique). Errors name the line.
func parseScopeLines(text string, lim scopeLimits) ([]string, error) {
	if len(text) > lim.maxText {
		return nil, fmt.Errorf("%w: at most %d bytes of scopes (got %d)", ErrInputTooLarge, lim.maxText, len(text))
	}
	out := []string{}
	seen := map[string]bool{}
	for i, line := range strings.Split(text, "\n") {
		s := strings.TrimSpace(line)
		if s == "" || seen[s] {
			continue
		}
		if len(s) > MaxScopeLength {
			return nil, fmt.Errorf("%w: line %d: a scope may be at most %d characters", ErrInputTooLarge, i+1, MaxScopeLength)
		}
		if !scopeengine.ValidScope(s) {
			return nil, fmt.Errorf("%w: line %d: scopes may contain only printable ASCII characters (0x20-0x7E)", ErrInvalidScope, i+1)
		}
		if len(out) == lim.maxScopes {
			return nil, fmt.Errorf("%w: at most %d scopes", ErrInputTooLarge, lim.maxScopes)
		}
		seen[s] = true
		out = append(out, s)
	}
	return out, nil
}

// checkRoleScopes refuses what the API would refuse for a role anyway, so
// the preview does not show a change that cannot be saved.
func checkRoleScopes(scopes []string) error {
	for _, s := range scopes {
		if strings.HasSuffix(s, "**") {
			return fmt.Errorf("%w: %q", ErrDoubleStarRole, s)
		}
	}
	return nil
}

// formatScopeLines is the textarea form of a scope list.
func formatScopeLines(scopes []string) string { return strings.Join(scopes, "\n") }

// parseExprInput reads the inspector's expression field: JSON (a quoted
// scope or an {"AllOf"/"AnyOf": [...]} object) when it starts with '{' or
// '"', else the whole trimmed text is one scope.
func parseExprInput(text string) (scopeengine.Expr, error) {
	if len(text) > MaxExprText {
		return scopeengine.Expr{}, fmt.Errorf("%w: at most %d bytes", ErrInputTooLarge, MaxExprText)
	}
	t := strings.TrimSpace(text)
	switch {
	case t == "":
		return scopeengine.Expr{}, fmt.Errorf("%w: enter a scope or a JSON scope expression", ErrEmptyInput)
	case t[0] == '[':
		return scopeengine.Expr{}, fmt.Errorf(`%w: a JSON array is not an expression; write {"AllOf": [...]} or {"AnyOf": [...]}`, ErrInvalidExprIn)
	case t[0] != '{' && t[0] != '"':
		if len(t) > MaxScopeLength || !scopeengine.ValidScope(t) {
			return scopeengine.Expr{}, fmt.Errorf("%w: a single scope must be printable ASCII of at most %d characters", ErrInvalidScope, MaxScopeLength)
		}
		return scopeengine.ScopeExpr(t), nil
	}
	e, err := scopeengine.ParseExpr([]byte(t))
	if err != nil {
		// scopeengine's message already says what is wrong; drop its
		// sentinel prefix so it is not repeated.
		msg := strings.TrimPrefix(err.Error(), scopeengine.ErrInvalidExpression.Error()+": ")
		return scopeengine.Expr{}, fmt.Errorf("%w: %s", ErrInvalidExprIn, msg)
	}
	if n := exprNodes(e, MaxExprNodes+1); n > MaxExprNodes {
		return scopeengine.Expr{}, fmt.Errorf("%w: at most %d scopes and operators", ErrInputTooLarge, MaxExprNodes)
	}
	if exprTooLong(e) {
		return scopeengine.Expr{}, fmt.Errorf("%w: a scope may be at most %d characters", ErrInputTooLarge, MaxScopeLength)
	}
	return e, nil
}

// exprNodes counts e's nodes, stopping once limit is reached.
func exprNodes(e scopeengine.Expr, limit int) int {
	n := 1
	for _, c := range e.Children() {
		if n >= limit {
			break
		}
		n += exprNodes(c, limit-n)
	}
	return n
}

func exprTooLong(e scopeengine.Expr) bool {
	if e.IsScope() {
		return len(e.Scope()) > MaxScopeLength
	}
	for _, c := range e.Children() {
		if exprTooLong(c) {
			return true
		}
	}
	return false
}

// exprCheck is the inspector's answer for "does this set satisfy e".
type exprCheck struct {
	Satisfied bool
	// Unsatisfied is the part of e the set lacks (Taskcluster's
	// removeGivenScopes, the "missing" part of an InsufficientScopes
	// message); empty when satisfied.
	Unsatisfied string
	// Satisfying lists the scopes of e that the set satisfied.
	Satisfying []string
}

func checkExpr(e scopeengine.Expr, have scopeengine.ScopeSet) exprCheck {
	if u, missing := e.Unsatisfied(have); missing {
		return exprCheck{Unsatisfied: u.String()}
	}
	sat, _ := e.ScopesSatisfying(have)
	return exprCheck{Satisfied: true, Satisfying: sat}
}

// roleChange says what saving new scopes for a role adds to and removes
// from its expanded scopes, from three expansions the API made: full, the
// role's expanded scopes now (expand([assume:<roleId>])); ownBefore and
// ownAfter, the expansions of its own scopes before and after. By
// satisfaction, not by string: a scope is added if the role did not
// already have it (replacing a:x by a:* adds a:*), removed if the role had
// it from its own scopes and the new ones no longer satisfy it (replacing
// a:* by a:x removes a:*). The role's expansion is assume plus the
// expansion of its own scopes plus what star roles matching its id grant;
// the last part does not change with the role's scopes, but the API
// cannot expand it separately, so viaOthers reports that full holds scopes
// the role's own scopes do not give, and a "removed" scope may then still
// be granted that way.
func roleChange(full, ownBefore, ownAfter scopeengine.ScopeSet, assume string) (added, removed []string, viaOthers bool) {
	added = notSatisfiedBy(ownAfter, full)
	removed = []string{}
	for _, s := range full {
		switch {
		case s == assume:
		case !ownBefore.Satisfies(s):
			viaOthers = true
		case !ownAfter.Satisfies(s):
			removed = append(removed, s)
		}
	}
	return added, removed, viaOthers
}

// starParamScopes is what a star role's scopes grant through its own
// id (assume:<prefix>*, parameter "*"): "<..>" and everything after it
// becomes "*". Scopes of other roles are granted literally.
func starParamScopes(roleID string, scopes []string) []string {
	if !strings.HasSuffix(roleID, "*") {
		return scopes
	}
	out := make([]string, len(scopes))
	for i, s := range scopes {
		if j := strings.Index(s, "<..>"); j >= 0 {
			s = s[:j] + "*"
		}
		out[i] = s
	}
	return out
}

// notSatisfiedBy lists the members of from that other does not satisfy.
func notSatisfiedBy(from, other scopeengine.ScopeSet) []string {
	out := []string{}
	for _, s := range from {
		if !other.Satisfies(s) {
			out = append(out, s)
		}
	}
	return out
}

// setComparison is the inspector's comparison of two sets A and B.
type setComparison struct {
	// OnlyA: members of A that B does not satisfy; OnlyB likewise.
	OnlyA, OnlyB []string
	// Both: what both sets grant (their intersection, normalised): for
	// A=[a:*], B=[a:x] that is a:x, while a:* is only in A.
	Both []string
}

func compareSets(a, b scopeengine.ScopeSet) setComparison {
	return setComparison{
		OnlyA: notSatisfiedBy(a, b),
		OnlyB: notSatisfiedBy(b, a),
		Both:  []string(scopeengine.NewScopeSet(scopeengine.Intersection(a, b))),
	}
}

// Holder match modes of the "who holds this scope" search.
const (
	// modeSatisfies: the holder's expanded scopes satisfy the scope (it can
	// do what the scope allows).
	modeSatisfies = "satisfies"
	// modeHolds: the holder has a scope that the query matches as a
	// pattern — the exact scope, or for "queue:*" any queue: scope.
	modeHolds = "holds"
)

// holderMatch reports whether a role or client with the given expanded
// scopes matches query in mode, and the expanded scopes that made it
// match (for modeSatisfies: the one scope that satisfies query).
func holderMatch(query, mode string, expanded scopeengine.ScopeSet) (bool, []string) {
	var via []string
	if mode == modeHolds {
		for _, s := range expanded {
			if scopeengine.Satisfies(query, s) {
				via = append(via, s)
			}
		}
		return len(via) > 0, via
	}
	for _, s := range expanded {
		if scopeengine.Satisfies(s, query) {
			return true, []string{s}
		}
	}
	return false, nil
}
