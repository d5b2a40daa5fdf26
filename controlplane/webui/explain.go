package webui

import (
	"encoding/json"
	"strings"

	"github.com/tcauth/tcauth/scopeengine"
)

// The inspector's "which scopes would this call need?" form: a method, a
// URL, optionally a JSON body and a client, sent to the API's
// POST /tcauth/explain as the user (so checking a client needs
// auth:get-client:<id>, as reading it does) and rendered here.

// explainMethods are the form's choices (the auth API's and a
// sidecar's usual methods).
var explainMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

// Bounds of the explain form, as the API's (docs/api.md §8).
const (
	maxExplainURL  = 8 << 10
	maxExplainBody = 64 << 10
)

// explainResult is the API's answer, the fields the page shows.
type explainResult struct {
	Endpoint            string          `json:"endpoint"`
	Method              string          `json:"method"`
	Route               string          `json:"route"`
	Template            json.RawMessage `json:"template"`
	Parameters          []explainParam  `json:"parameters"`
	Needs               string          `json:"needs"`
	Expression          json.RawMessage `json:"expression"`
	Partial             []string        `json:"partial"`
	Unknown             []string        `json:"unknown"`
	Notes               []string        `json:"notes"`
	ClientID            string          `json:"clientId"`
	Satisfied           *bool           `json:"satisfied"`
	Missing             json.RawMessage `json:"missing"`
	MissingAlternatives [][]string      `json:"missingAlternatives"`
	TemplateText        string          `json:"-"`
	ExpressionText      string          `json:"-"`
	MissingText         string          `json:"-"`
	// Outcome of the client check: "" (none asked), "yes", "no", "unknown".
	Outcome string `json:"-"`
}

type explainParam struct {
	Name  string `json:"name"`
	From  string `json:"from"`
	How   string `json:"how"`
	Value any    `json:"value"`
	Text  string `json:"-"` // Value as compact JSON
}

func (q *Request) inspectExplain(d *inspectorData) (*explainResult, error) {
	method := strings.ToUpper(strings.TrimSpace(d.ExplainMethod))
	target := strings.TrimSpace(d.ExplainURL)
	switch {
	case target == "":
		return nil, inputProblem("Enter the URL of the call, e.g. /api/auth/v1/clients/my-client.")
	case len(target) > maxExplainURL:
		return nil, inputProblem("The URL is longer than " + itoa(maxExplainURL) + " characters.")
	case len(d.ExplainBody) > maxExplainBody:
		return nil, inputProblem("The body is larger than " + itoa(maxExplainBody) + " bytes.")
	}
	req := map[string]any{"method": method, "url": target}
	if b := strings.TrimSpace(d.ExplainBody); b != "" {
		var body map[string]any
		if err := json.Unmarshal([]byte(b), &body); err != nil || body == nil {
			return nil, inputProblem("The body must be a JSON object (the request body of the call).")
		}
		req["body"] = body
	}
	if c := strings.TrimSpace(d.ExplainClient); c != "" {
		req["clientId"] = c
	}
	var res explainResult
	if err := q.API.Do(q.R.Context(), "POST", "/tcauth/explain", nil, req, &res); err != nil {
		return nil, err
	}
	res.TemplateText = exprText(res.Template)
	res.ExpressionText = exprText(res.Expression)
	res.MissingText = exprText(res.Missing)
	switch {
	case res.ClientID == "":
	case res.Satisfied == nil:
		res.Outcome = "unknown"
	case *res.Satisfied:
		res.Outcome = "yes"
	default:
		res.Outcome = "no"
	}
	for i := range res.Parameters {
		res.Parameters[i].Text = paramValue(res.Parameters[i].Value)
	}
	return &res, nil
}

// exprText shows an expression or template as the 403 pages do: a bare
// scope, or indented JSON.
func exprText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if e, err := scopeengine.ParseExpr(raw); err == nil {
		return e.String()
	}
	var v any
	if json.Unmarshal(raw, &v) == nil {
		if b, err := marshalIndentNoEscape(v); err == nil {
			return b
		}
	}
	return string(raw)
}

func marshalIndentNoEscape(v any) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// paramValue shows a parameter's value compactly.
func paramValue(v any) string {
	if v == nil {
		return "(not given)"
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}
