package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// API error codes and their HTTP statuses (docs/api.md §1).
const (
	CodeMalformedPayload        = "MalformedPayload"
	CodeInvalidRequestArguments = "InvalidRequestArguments"
	CodeInputValidationError    = "InputValidationError"
	CodeInputError              = "InputError"
	CodeAuthenticationFailed    = "AuthenticationFailed"
	CodeInsufficientScopes      = "InsufficientScopes"
	CodeResourceNotFound        = "ResourceNotFound"
	CodeRequestConflict         = "RequestConflict"
	CodeResourceExpired         = "ResourceExpired"
	CodeInputTooLarge           = "InputTooLarge"
	CodeTooManyRequests         = "TooManyRequests"
	CodeInternalServerError     = "InternalServerError"
)

var codeStatus = map[string]int{
	CodeMalformedPayload:        400,
	CodeInvalidRequestArguments: 400,
	CodeInputValidationError:    400,
	CodeInputError:              400,
	CodeAuthenticationFailed:    401,
	CodeInsufficientScopes:      403,
	CodeResourceNotFound:        404,
	CodeRequestConflict:         409,
	CodeResourceExpired:         410,
	CodeInputTooLarge:           413,
	CodeTooManyRequests:         429,
	CodeInternalServerError:     500,
}

// TwoSchemesMessage is lib-api's answer to a request with both an
// Authorization header and a bewit (401 AuthenticationFailed).
const TwoSchemesMessage = "Cannot use two authentication schemes at once this request has both bewit in querystring and 'authorization' header"

// APIError is an API failure in Taskcluster's error shape. Message may
// contain {{key}} placeholders filled from Details when the body is built.
type APIError struct {
	Code    string
	Status  int
	Message string
	Details map[string]any
}

// NewAPIError returns an error with the status that belongs to code
// (500 for an unknown code).
func NewAPIError(code, message string) *APIError {
	status, ok := codeStatus[code]
	if !ok {
		status = 500
	}
	return &APIError{Code: code, Status: status, Message: message}
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// RequestInfo is the requestInfo member of an error body.
type RequestInfo struct {
	Method  string            `json:"method"`
	Params  map[string]string `json:"params"`
	Payload any               `json:"payload"`
	Time    string            `json:"time"`
}

// ErrorBody is the JSON body of every API error.
type ErrorBody struct {
	Code        string      `json:"code"`
	Message     string      `json:"message"`
	RequestInfo RequestInfo `json:"requestInfo"`
}

// Body builds the error body for the endpoint named method: the message
// with {{key}} placeholders interpolated from Details (strings verbatim,
// other values as 2-space-indented JSON, unknown keys left as they are)
// and lib-api's suffix. nil params and payload render as {}.
func (e *APIError) Body(method string, params map[string]string, payload any, now time.Time) ErrorBody {
	if params == nil {
		params = map[string]string{}
	}
	if payload == nil {
		payload = map[string]any{}
	}
	ts := FormatTime(now)
	var b strings.Builder
	b.WriteString(interpolate(e.Message, e.Details))
	b.WriteString("\n\n---\n\n* method:     ")
	b.WriteString(method)
	b.WriteString("\n* errorCode:  ")
	b.WriteString(e.Code)
	b.WriteString("\n* statusCode: ")
	b.WriteString(strconv.Itoa(e.Status))
	b.WriteString("\n* time:       ")
	b.WriteString(ts)
	return ErrorBody{
		Code:        e.Code,
		Message:     b.String(),
		RequestInfo: RequestInfo{Method: method, Params: params, Payload: payload, Time: ts},
	}
}

// interpolate replaces {{key}} (key of [A-Za-z0-9_-]) with details[key].
func interpolate(msg string, details map[string]any) string {
	if len(details) == 0 || !strings.Contains(msg, "{{") {
		return msg
	}
	var b strings.Builder
	for {
		i := strings.Index(msg, "{{")
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		j := i + 2
		for j < len(msg) && (isWordByte(msg[j]) || msg[j] == '-') {
			j++
		}
		key := msg[i+2 : j]
		v, ok := details[key]
		if j == i+2 || !strings.HasPrefix(msg[j:], "}}") || !ok {
			b.WriteString(msg[:i+1]) // "{{{k}}}" must still find "{{k}}"
			msg = msg[i+1:]
			continue
		}
		b.WriteString(msg[:i])
		b.WriteString(detailText(v))
		msg = msg[j+2:]
	}
}

// detailText renders a detail as lib-api does: strings as they are, the
// rest as JSON.stringify(value, null, 2).
func detailText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if s, ok := v.(fmt.Stringer); ok {
		return s.String()
	}
	return IndentJSON(v)
}

// IndentJSON is JSON.stringify(v, null, 2) for JSON-able values (no HTML
// escaping, two-space indent).
func IndentJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// The InsufficientScopes message templates of lib-api (docs/api.md §1), with
// {{clientId}}, {{unsatisfied}} and {{required}} placeholders. A handler
// that raises the error without details gets the placeholders verbatim,
// as the reference's testAuthenticateGet does.
const (
	InsufficientScopesTemplate = "Client ID {{clientId}} does not have sufficient scopes and is missing the following scopes:\n\n```\n{{unsatisfied}}\n```\n\n" +
		"This request requires the client to satisfy the following scope expression:\n\n```\n{{required}}\n```"
	InsufficientScopesNoAuthTemplate = "This request requires Taskcluster credentials that satisfy the following scope expression:\n\n```\n{{required}}\n```"
)

// InsufficientScopesMessage is the InsufficientScopes message before the
// common suffix. unsatisfied and required render as a bare scope or
// 2-space-indented JSON (their String methods decide); noAuth selects the
// "without credentials" form, which names only required.
func InsufficientScopesMessage(clientID string, unsatisfied, required fmt.Stringer, noAuth bool) string {
	if noAuth {
		return interpolate(InsufficientScopesNoAuthTemplate, map[string]any{"required": required})
	}
	return interpolate(InsufficientScopesTemplate, map[string]any{"clientId": clientID, "unsatisfied": unsatisfied, "required": required})
}
