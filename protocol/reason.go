package protocol

import "strings"

// Failure reasons: the bounded label values FailureReason returns, for
// metrics of authentication outcomes (a message itself holds clientIds
// and scopes, which would make a label's values unbounded).
const (
	ReasonBadMAC           = "bad_mac"
	ReasonStaleTimestamp   = "stale_timestamp"
	ReasonUnknownClient    = "unknown_client"
	ReasonDisabledClient   = "disabled_client"
	ReasonExpiredClient    = "expired_client"
	ReasonBadHeader        = "bad_header"
	ReasonBadExt           = "bad_ext"
	ReasonCertificate      = "bad_certificate"
	ReasonAuthorizedScopes = "authorized_scopes"
	ReasonBewit            = "bad_bewit"
	ReasonBewitExpired     = "bewit_expired"
	ReasonLookupFailed     = "lookup_failed"
	ReasonOther            = "other"
)

// FailureReason classifies a failed authentication (Result.Reason, or the
// message of a remote authenticateHawk answer) into one of the Reason…
// values. It works on the message, so that a failure reported by another
// node (Result.Reason rebuilt from the message) is classified the same.
func FailureReason(err error) string {
	if err == nil {
		return ""
	}
	if _, ok := err.(*lookupError); ok {
		return ReasonLookupFailed
	}
	return reasonOf(err.Error())
}

func reasonOf(msg string) string {
	switch msg {
	case ErrBadMAC.Message:
		return ReasonBadMAC
	case ErrStaleTimestamp.Message:
		return ReasonStaleTimestamp
	case ErrAccessExpired.Message:
		return ReasonBewitExpired
	case ErrInvalidCredentials.Message:
		return ReasonUnknownClient
	case ErrFailedToParseExt.Message:
		return ReasonBadExt
	case ErrEmptyBewit.Message, ErrInvalidMethod.Message, ErrInvalidBewitEncode.Message, ErrInvalidBewitStruct.Message,
		ErrMissingBewitAttrs.Message, ErrResourceTooLong.Message, ErrInvalidBewitExpiry.Message:
		return ReasonBewit
	}
	switch {
	case strings.HasPrefix(msg, "Internal error: client lookup failed"):
		return ReasonLookupFailed
	case strings.HasPrefix(msg, "Client with clientId") && strings.HasSuffix(msg, "not found"):
		return ReasonUnknownClient
	case strings.HasPrefix(msg, "Client with clientId") && strings.HasSuffix(msg, "is disabled"):
		return ReasonDisabledClient
	case strings.HasPrefix(msg, "Client with clientId") && strings.HasSuffix(msg, "has expired"):
		return ReasonExpiredClient
	case strings.HasPrefix(msg, "ext.certificate"):
		return ReasonCertificate
	case strings.HasPrefix(msg, "ext.authorizedScopes") || strings.HasPrefix(msg, "Supplied credentials do not satisfy authorizedScopes"):
		return ReasonAuthorizedScopes
	case strings.HasPrefix(msg, "Bad Request:") || strings.HasPrefix(msg, "Unauthorized:"):
		return ReasonBadHeader
	}
	return ReasonOther
}
