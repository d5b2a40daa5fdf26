package protocol

// AuthError is an authentication failure with the exact message the
// reference validator reports (e.g. "Unauthorized: Bad mac"). Callers answer
// it with 401 AuthenticationFailed.
type AuthError struct{ Message string }

func (e *AuthError) Error() string { return e.Message }

// Failures that carry no variable part are shared values, so the hot path
// allocates nothing for them and callers can test with errors.Is.
var (
	// Hawk header (docs/protocol.md §2, §3, §5).
	ErrHeaderTooLong      = &AuthError{"Bad Request: Header length too long"}
	ErrInvalidSyntax      = &AuthError{"Bad Request: Invalid header syntax"}
	ErrBadHeaderFormat    = &AuthError{"Bad Request: Bad header format"}
	ErrMissingAttributes  = &AuthError{"Bad Request: Missing attributes"}
	ErrUnauthorized       = &AuthError{"Unauthorized: Unauthorized"}
	ErrBadMAC             = &AuthError{"Unauthorized: Bad mac"}
	ErrStaleTimestamp     = &AuthError{"Unauthorized: Stale timestamp"}
	ErrInvalidCredentials = &AuthError{"Invalid credentials"}
	ErrFailedToParseExt   = &AuthError{"Failed to parse ext"}

	// Bewits (docs/protocol.md §10).
	ErrResourceTooLong    = &AuthError{"Bad Request: Resource path exceeds max length"}
	ErrEmptyBewit         = &AuthError{"Unauthorized: Empty bewit"}
	ErrInvalidMethod      = &AuthError{"Unauthorized: Invalid method"}
	ErrInvalidBewitEncode = &AuthError{"Bad Request: Invalid bewit encoding"}
	ErrInvalidBewitStruct = &AuthError{"Bad Request: Invalid bewit structure"}
	ErrMissingBewitAttrs  = &AuthError{"Bad Request: Missing bewit attributes"}
	ErrAccessExpired      = &AuthError{"Unauthorized: Access expired"}

	// Ours, not the reference's: the [quirk]s we reject (see
	// Authenticator.checkTimestamp and authenticateBewit).
	ErrInvalidTimestamp   = &AuthError{"Bad Request: Invalid timestamp (ts must be an integer number of seconds)"}
	ErrInvalidBewitExpiry = &AuthError{"Bad Request: Invalid bewit expiry (exp must be an integer number of seconds)"}
)
