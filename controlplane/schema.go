package controlplane

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// schema is the small subset of JSON schema (draft-06) that the auth API's
// input schemas use, validated the way the reference's ajv does: every
// error reported, additionalProperties false, formats checked. Error lines
// follow ajv 8's errorsText ("data/path must …") with lib-validate's
// ": \"<prop>\"" suffix on additional properties.
type schema struct {
	typ        string // object, array, string, integer, boolean
	props      map[string]*schema
	order      []string // property order for deterministic messages
	required   []string
	items      *schema
	unique     bool
	minItems   int
	maxItems   int // 0 = unbounded
	maxLength  int // 0 = unbounded
	pattern    *regexp.Regexp
	format     string // date-time, hostname-or-ipv4, ip
	enum       []string
	min, max   float64
	hasMinMax  bool
	defaultVal any
	addl       *schema // schema of properties not in props; nil = none allowed
	minProps   int
}

func object(required []string, props ...any) *schema {
	s := &schema{typ: "object", props: map[string]*schema{}, required: required}
	for i := 0; i+1 < len(props); i += 2 {
		name := props[i].(string)
		s.props[name] = props[i+1].(*schema)
		s.order = append(s.order, name)
	}
	return s
}

var (
	scopePattern = regexp.MustCompile(`^[\x20-\x7e]*$`)
	repoNameRe   = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

func scopeList() *schema {
	return &schema{typ: "array", unique: true, items: &schema{typ: "string", pattern: scopePattern}}
}

func descriptionSchema() *schema { return &schema{typ: "string", maxLength: 10240} }

// The input schemas (services/auth/schemas/v1/*.yml).
var (
	createClientSchema = object([]string{"expires", "description"},
		"expires", &schema{typ: "string", format: "date-time"},
		"description", descriptionSchema(),
		"scopes", scopeList(),
		"deleteOnExpiration", &schema{typ: "boolean", defaultVal: false},
	)
	createRoleSchema = object([]string{"scopes", "description"},
		"scopes", scopeList(),
		"description", descriptionSchema(),
	)
	scopesetSchema         = object([]string{"scopes"}, "scopes", scopeList())
	testAuthenticateSchema = object([]string{"clientScopes", "requiredScopes"}, "clientScopes", scopeList(), "requiredScopes", scopeList())
	authenticateHawkSchema = object([]string{"method", "resource", "host", "port"},
		"method", &schema{typ: "string", enum: []string{"get", "post", "put", "head", "delete", "options", "trace", "copy", "lock",
			"mkcol", "move", "purge", "propfind", "proppatch", "unlock", "report", "mkactivity", "checkout", "merge",
			"m-search", "notify", "subscribe", "unsubscribe", "patch", "search", "connect"}},
		"resource", &schema{typ: "string"},
		"host", &schema{typ: "string", format: "hostname-or-ipv4"},
		"port", &schema{typ: "integer", min: 0, max: 65535, hasMinMax: true},
		"authorization", &schema{typ: "string"},
		"sourceIp", &schema{typ: "string", format: "ip"},
	)
)

// schemaIDs name the schemas in error messages.
var schemaIDs = map[*schema]string{
	createClientSchema:     "create-client-request",
	createRoleSchema:       "create-role-request",
	scopesetSchema:         "scopeset",
	testAuthenticateSchema: "test-authenticate-request",
	authenticateHawkSchema: "authenticate-hawk-request",
}

// validate checks v (decoded with encoding/json into any) and fills in
// defaults; it returns the error lines.
func (s *schema) validate(v any, path string, errs *[]string) any {
	add := func(msg string) { *errs = append(*errs, "data"+path+" "+msg) }
	switch s.typ {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			add("must be object")
			return v
		}
		for _, r := range s.required {
			if _, ok := m[r]; !ok {
				add("must have required property '" + r + "'")
			}
		}
		if len(m) < s.minProps {
			add(fmt.Sprintf("must NOT have fewer than %d properties", s.minProps))
		}
		var extra []string
		for k := range m {
			if _, ok := s.props[k]; !ok {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		for _, k := range extra {
			if s.addl != nil {
				m[k] = s.addl.validate(m[k], path+"/"+jsonPointerEscape(k), errs)
				continue
			}
			add("must NOT have additional properties: " + jsonString(k))
		}
		for _, name := range s.order {
			p := s.props[name]
			if val, ok := m[name]; ok {
				m[name] = p.validate(val, path+"/"+jsonPointerEscape(name), errs)
			} else if p.defaultVal != nil {
				m[name] = p.defaultVal
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			add("must be array")
			return v
		}
		if len(a) < s.minItems {
			add(fmt.Sprintf("must NOT have fewer than %d items", s.minItems))
		}
		if s.maxItems > 0 && len(a) > s.maxItems {
			add(fmt.Sprintf("must NOT have more than %d items", s.maxItems))
		}
		if s.items != nil {
			for i := range a {
				a[i] = s.items.validate(a[i], path+"/"+strconv.Itoa(i), errs)
			}
		}
		if s.unique {
			// ajv reports the first duplicate pair found scanning from the end.
		outer:
			for i := len(a) - 1; i > 0; i-- {
				for j := i - 1; j >= 0; j-- {
					if reflect.DeepEqual(a[i], a[j]) {
						add(fmt.Sprintf("must NOT have duplicate items (items ## %d and %d are identical)", j, i))
						break outer
					}
				}
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			add("must be string")
			return v
		}
		if s.maxLength > 0 && utf16Length(str) > s.maxLength {
			add(fmt.Sprintf("must NOT have more than %d characters", s.maxLength))
		}
		if s.pattern != nil && !s.pattern.MatchString(str) {
			add("must match pattern " + jsonString(s.pattern.String()))
		}
		if s.format != "" && !checkFormat(s.format, str) {
			f := s.format
			if f == "hostname-or-ipv4" {
				f = "hostname"
			}
			add("must match format " + jsonString(f))
		}
		if s.enum != nil {
			found := false
			for _, e := range s.enum {
				found = found || e == str
			}
			if !found {
				add("must be equal to one of the allowed values")
			}
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) || math.IsInf(f, 0) {
			add("must be integer")
			return v
		}
		if s.hasMinMax && f < s.min {
			add(fmt.Sprintf("must be >= %v", s.min))
		}
		if s.hasMinMax && f > s.max {
			add(fmt.Sprintf("must be <= %v", s.max))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			add("must be boolean")
		}
	}
	return v
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func jsonPointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func utf16Length(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// dateTimeRe is ajv-formats' full date-time: date, 'T' or space... ajv
// requires 'T'/'t' and a time zone.
var dateTimeRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$`)

var hostnameRe = regexp.MustCompile(`^(?i)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-0-9a-z]{0,61}[0-9a-z])?)*$`)

func checkFormat(format, s string) bool {
	switch format {
	case "date-time":
		if !dateTimeRe.MatchString(s) {
			return false
		}
		_, err := parseDateTime(s)
		return err == nil
	case "hostname-or-ipv4":
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			return true
		}
		return len(s) <= 253 && hostnameRe.MatchString(s)
	case "ip":
		_, err := netip.ParseAddr(s)
		return err == nil
	}
	return true
}

// parseDateTime parses an RFC 3339 date-time (as the schema accepted it)
// with JavaScript Date's millisecond precision.
func parseDateTime(s string) (time.Time, error) {
	s = strings.Replace(strings.Replace(s, "t", "T", 1), "z", "Z", 1)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC().Truncate(time.Millisecond), nil
}
