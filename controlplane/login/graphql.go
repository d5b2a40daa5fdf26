package login

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/tcauth/tcauth/protocol"
)

// POST /graphql serves the two queries of Taskcluster web-server's GraphQL
// API that a front end needs to sign in, with web-server's schema
//
//	type TaskclusterCredentials { clientId: ID!  accessToken: ID!  certificate: String }
//	type Credentials { expires: DateTime!  credentials: TaskclusterCredentials! }
//	extend type Query { getCredentials: Credentials  isLoggedIn: Boolean }
//
// and its errors (Unauthorized "Authentication is required to generate
// credentials", InputError "Could not generate credentials for this
// user", as field errors in an HTTP 200 answer). Any other field, and any
// mutation or subscription, is an error saying tcauth does not serve it.
//
// Only POST is served, with Content-Type application/json or
// application/graphql: a GET (or a form's text/plain POST) could be sent
// by any page without a CORS preflight, and web-server's front end never
// uses one. Directives are refused rather than half-implemented.

// gqlError is one entry of "errors".
type gqlError struct {
	Message    string         `json:"message"`
	Locations  []gqlLoc       `json:"locations,omitempty"`
	Path       []string       `json:"path,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

type gqlLoc struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

func gqlErr(code, msg string, line, col int) gqlError {
	e := gqlError{Message: msg, Extensions: map[string]any{"code": code}}
	if line > 0 {
		e.Locations = []gqlLoc{{line, col}}
	}
	return e
}

const notServed = "tcauth serves only the getCredentials and isLoggedIn queries of Taskcluster's web-server GraphQL API"

// gqlRequest is the JSON body of a GraphQL POST.
type gqlRequest struct {
	Query         *string         `json:"query"`
	OperationName *string         `json:"operationName"`
	Variables     json.RawMessage `json:"variables"`
}

// readGraphQL reads the query and operation name of a request; the
// status and error are the answer to a request that has none.
func readGraphQL(w http.ResponseWriter, r *http.Request) (query, opName string, status int, e *gqlError) {
	bad := func(status int, msg string) (string, string, int, *gqlError) {
		err := gqlErr("BAD_REQUEST", msg, 0, 0)
		return "", "", status, &err
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" && mt != "application/graphql" {
		return bad(http.StatusUnsupportedMediaType, "POST /graphql needs Content-Type application/json (or application/graphql)")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, gqlMaxBody))
	if err != nil {
		return bad(http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes", gqlMaxBody))
	}
	if mt == "application/graphql" {
		return string(body), "", 0, nil
	}
	var req gqlRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil || dec.More() {
		return bad(http.StatusBadRequest, "The request body must be one JSON object {query, operationName, variables}")
	}
	if req.Query == nil || strings.TrimSpace(*req.Query) == "" {
		return bad(http.StatusBadRequest, "GraphQL operations must contain a non-empty `query`.")
	}
	if v := bytes.TrimSpace(req.Variables); len(v) > 0 && v[0] != '{' && string(v) != "null" {
		return bad(http.StatusBadRequest, "`variables` in a POST body should be provided as an object.")
	}
	if req.OperationName != nil {
		opName = *req.OperationName
	}
	return *req.Query, opName, 0, nil
}

// serveGraphQL is POST /graphql.
func (s *Service) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	s.setCORS(w, r)
	w.Header().Set("Cache-Control", "no-store")
	query, opName, status, e := readGraphQL(w, r)
	if e != nil {
		writeGraphQL(w, status, []gqlError{*e}, nil)
		return
	}
	plan, status, errs := planGraphQL(query, opName)
	if errs != nil {
		writeGraphQL(w, status, errs, nil)
		return
	}
	ex := &gqlExec{s: s, r: r}
	data := ex.object("Query", plan, nil)
	if ex.unavailable {
		w.Header().Set("Retry-After", "1")
		writeGraphQL(w, http.StatusServiceUnavailable, []gqlError{gqlErr("SERVICE_UNAVAILABLE",
			"The login service cannot answer right now; retry later.", 0, 0)}, nil)
		return
	}
	writeGraphQL(w, http.StatusOK, ex.errs, data)
}

func writeGraphQL(w http.ResponseWriter, status int, errs []gqlError, data gqlObject) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(errs) > 0 {
		eb, _ := protocol.Marshal(errs)
		b.WriteString(`"errors":`)
		b.Write(eb)
	}
	if data != nil {
		if len(errs) > 0 {
			b.WriteByte(',')
		}
		db, _ := protocol.Marshal(data)
		b.WriteString(`"data":`)
		b.Write(db)
	}
	b.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// gqlObject is a JSON object that keeps the query's field order.
type gqlObject []gqlMember

type gqlMember struct {
	key string
	val any
}

func (o gqlObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := protocol.Marshal(m.key)
		v, err := protocol.Marshal(m.val)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// The served schema: for each object type, its fields and their types
// (a type that is a key here is an object type; others are leaves).
var gqlSchema = map[string]map[string]string{
	"Query":                  {"getCredentials": "Credentials", "isLoggedIn": "Boolean", "__typename": "String!"},
	"Credentials":            {"expires": "DateTime!", "credentials": "TaskclusterCredentials!", "__typename": "String!"},
	"TaskclusterCredentials": {"clientId": "ID!", "accessToken": "ID!", "certificate": "String", "__typename": "String!"},
}

// gqlField is a validated field to execute, sub-fields merged.
type gqlField struct {
	key, name string
	line, col int
	sub       []*gqlField
}

// planGraphQL parses and validates a document for execution: the chosen
// operation's fields, fragments inlined, same-key fields merged.
func planGraphQL(query, opName string) ([]*gqlField, int, []gqlError) {
	doc, err := gqlParse(query)
	if err != nil {
		var se *gqlSyntaxError
		if errors.As(err, &se) {
			return nil, http.StatusBadRequest, []gqlError{gqlErr("GRAPHQL_PARSE_FAILED", se.Error(), se.line, se.col)}
		}
		return nil, http.StatusBadRequest, []gqlError{gqlErr("GRAPHQL_PARSE_FAILED", err.Error(), 0, 0)}
	}
	op, e := pickOperation(doc, opName)
	if e != nil {
		return nil, http.StatusBadRequest, []gqlError{*e}
	}
	if op.kind != "query" {
		return nil, http.StatusBadRequest, []gqlError{gqlErr("GRAPHQL_VALIDATION_FAILED",
			fmt.Sprintf("%s operations are not served by tcauth: %s.", op.kind, notServed), op.line, op.col)}
	}
	v := &gqlValidator{doc: doc, visiting: map[string]bool{}}
	plan := v.collect("Query", [][]gqlSel{op.sel})
	if len(v.errs) > 0 {
		return nil, http.StatusBadRequest, v.errs
	}
	return plan, 0, nil
}

func pickOperation(doc *gqlDoc, name string) (*gqlOp, *gqlError) {
	var found *gqlOp
	for _, op := range doc.ops {
		if name == "" || op.name == name {
			if found != nil {
				e := gqlErr("BAD_REQUEST", "Must provide operation name if query contains multiple operations.", 0, 0)
				if name != "" {
					e.Message = fmt.Sprintf("There can be only one operation named %q.", name)
				}
				return nil, &e
			}
			found = op
		}
	}
	if found == nil {
		e := gqlErr("BAD_REQUEST", "Must provide an operation.", 0, 0)
		if name != "" {
			e.Message = fmt.Sprintf("Unknown operation named %q.", name)
		}
		return nil, &e
	}
	return found, nil
}

type gqlValidator struct {
	doc      *gqlDoc
	visiting map[string]bool
	errs     []gqlError
	fields   int
}

// gqlMaxFields bounds the fields of one plan (fragments can multiply them).
const gqlMaxFields = 200

func (v *gqlValidator) fail(msg string, line, col int) {
	v.errs = append(v.errs, gqlErr("GRAPHQL_VALIDATION_FAILED", msg, line, col))
}

// collect gathers the fields of selection sets on typ (CollectFields of
// the spec) and validates each against the schema.
func (v *gqlValidator) collect(typ string, sets [][]gqlSel) []*gqlField {
	type entry struct {
		f    *gqlField
		subs [][]gqlSel
	}
	var order []*entry
	byKey := map[string]*entry{}
	var walk func(sels []gqlSel)
	walk = func(sels []gqlSel) {
		for _, s := range sels {
			if len(v.errs) > 0 {
				return
			}
			if s.hasDirs {
				v.fail("Directives are not served by tcauth.", s.line, s.col)
				return
			}
			switch s.kind {
			case 's':
				fr, ok := v.doc.frags[s.name]
				if !ok {
					v.fail(fmt.Sprintf("Unknown fragment %q.", s.name), s.line, s.col)
					return
				}
				if v.visiting[s.name] {
					v.fail(fmt.Sprintf("Cannot spread fragment %q within itself.", s.name), s.line, s.col)
					return
				}
				if fr.on != typ {
					v.fail(fmt.Sprintf("Fragment %q cannot be spread here as objects of type %q can never be of type %q.", s.name, typ, fr.on), s.line, s.col)
					return
				}
				v.visiting[s.name] = true
				walk(fr.sel)
				v.visiting[s.name] = false
			case 'i':
				if s.on != "" && s.on != typ {
					v.fail(fmt.Sprintf("Fragment cannot be spread here as objects of type %q can never be of type %q.", typ, s.on), s.line, s.col)
					return
				}
				walk(s.sel)
			default:
				if v.fields++; v.fields > gqlMaxFields {
					v.fail(fmt.Sprintf("The query selects more than %d fields.", gqlMaxFields), s.line, s.col)
					return
				}
				if e, ok := byKey[s.alias]; ok {
					if e.f.name != s.name {
						v.fail(fmt.Sprintf("Fields %q conflict because %q and %q are different fields.", s.alias, e.f.name, s.name), s.line, s.col)
						return
					}
					e.subs = append(e.subs, s.sel)
					continue
				}
				if !v.checkField(typ, s) {
					return
				}
				e := &entry{f: &gqlField{key: s.alias, name: s.name, line: s.line, col: s.col}, subs: [][]gqlSel{s.sel}}
				byKey[s.alias] = e
				order = append(order, e)
			}
		}
	}
	for _, set := range sets {
		walk(set)
	}
	out := make([]*gqlField, 0, len(order))
	for _, e := range order {
		if ft := strings.TrimSuffix(gqlSchema[typ][e.f.name], "!"); gqlSchema[ft] != nil {
			e.f.sub = v.collect(ft, e.subs)
		}
		out = append(out, e.f)
	}
	return out
}

// checkField validates one field selection on typ.
func (v *gqlValidator) checkField(typ string, s gqlSel) bool {
	ft, ok := gqlSchema[typ][s.name]
	if !ok {
		msg := fmt.Sprintf("Cannot query field %q on type %q.", s.name, typ)
		if typ == "Query" {
			msg += " " + notServed + "."
		}
		v.fail(msg, s.line, s.col)
		return false
	}
	if s.hasArgs {
		v.fail(fmt.Sprintf("Field %q on type %q takes no arguments.", s.name, typ), s.line, s.col)
		return false
	}
	isObject := gqlSchema[strings.TrimSuffix(ft, "!")] != nil
	switch {
	case isObject && !s.hasSel:
		v.fail(fmt.Sprintf("Field %q of type %q must have a selection of subfields. Did you mean \"%s { ... }\"?", s.name, ft, s.name), s.line, s.col)
		return false
	case !isObject && s.hasSel:
		v.fail(fmt.Sprintf("Field %q must not have a selection since type %q has no subfields.", s.name, ft), s.line, s.col)
		return false
	}
	return true
}

// gqlExec executes a plan for one request; the session and credentials
// are looked up once however often the query names them.
type gqlExec struct {
	s           *Service
	r           *http.Request
	errs        []gqlError
	unavailable bool

	sessDone bool
	sess     session
	signedIn bool

	credsDone bool
	creds     *CredentialsReply
	credsErr  *gqlError
}

func (ex *gqlExec) session() (session, bool) {
	if !ex.sessDone {
		ex.sessDone = true
		sess, ok, err := ex.s.sessionFrom(ex.r)
		if err != nil {
			ex.s.log.Warn("session lookup failed", "error", err.Error())
			ex.unavailable = true
		}
		ex.sess, ex.signedIn = sess, ok
	}
	return ex.sess, ex.signedIn
}

// credentials resolves getCredentials as web-server does.
func (ex *gqlExec) credentials(f *gqlField) (*CredentialsReply, *gqlError) {
	if ex.credsDone {
		return ex.creds, ex.credsErr
	}
	ex.credsDone = true
	sess, ok := ex.session()
	if ex.unavailable {
		return nil, nil
	}
	if !ok {
		e := gqlErr("Unauthorized", msgAuthRequired, f.line, f.col)
		ex.credsErr = &e
		return nil, ex.credsErr
	}
	reply, err := ex.s.credentialsFor(ex.r.Context(), sess)
	switch {
	case err == nil:
		ex.creds = &reply
	case userRefused(err) || errors.Is(err, errIssuer) || errors.Is(err, errTooManyRoles):
		ex.s.log.Info("no credentials for a signed-in user", "identity", sess.Identity, "reason", err.Error())
		msg := msgNoCredsUser
		if errors.Is(err, errTooManyRoles) {
			msg = msgTooManyRoles
		}
		e := gqlErr("InputError", msg, f.line, f.col)
		ex.credsErr = &e
	default:
		ex.s.log.Warn("credentials request failed (transient)", "identity", sess.Identity, "error", err.Error())
		ex.unavailable = true
	}
	return ex.creds, ex.credsErr
}

// object executes fields on typ; src is the resolved parent value.
func (ex *gqlExec) object(typ string, fields []*gqlField, src any) gqlObject {
	out := make(gqlObject, 0, len(fields))
	for _, f := range fields {
		out = append(out, gqlMember{f.key, ex.field(typ, f, src)})
	}
	return out
}

func (ex *gqlExec) field(typ string, f *gqlField, src any) any {
	if f.name == "__typename" {
		return typ
	}
	switch typ + "." + f.name {
	case "Query.isLoggedIn":
		_, ok := ex.session()
		return ok
	case "Query.getCredentials":
		c, e := ex.credentials(f)
		if e != nil {
			fe := *e
			fe.Path = []string{f.key}
			ex.errs = append(ex.errs, fe)
		}
		if c == nil {
			return nil
		}
		return ex.object("Credentials", f.sub, c)
	case "Credentials.expires":
		return src.(*CredentialsReply).Expires
	case "Credentials.credentials":
		return ex.object("TaskclusterCredentials", f.sub, &src.(*CredentialsReply).Credentials)
	case "TaskclusterCredentials.clientId":
		return src.(*ReplyCredentials).ClientID
	case "TaskclusterCredentials.accessToken":
		return src.(*ReplyCredentials).AccessToken
	case "TaskclusterCredentials.certificate":
		if c := src.(*ReplyCredentials).Certificate; c != "" {
			return c
		}
		return nil
	}
	return nil // unreachable: the plan was validated against gqlSchema
}
