package crypto

import "errors"

var (
	// ErrBadSecret is returned when a secret is not 32 bytes of base64. The
	// error never contains the input.
	ErrBadSecret = errors.New("invalid secret (want 32 bytes of base64, as `ussync keygen` prints)")

	// ErrNoSecret is returned when a keyring text holds no secret.
	ErrNoSecret = errors.New("no secret")

	// ErrUnknownKey is returned when a fingerprint names no secret in the
	// keyring.
	ErrUnknownKey = errors.New("unknown key fingerprint")

	// ErrRemovePrimary is returned when asked to remove the primary secret;
	// make another secret primary with Use first.
	ErrRemovePrimary = errors.New("cannot remove the primary key")

	// ErrSecretMarshal is returned by Secret.MarshalText: a secret is never
	// encoded implicitly. Use Encode.
	ErrSecretMarshal = errors.New("refusing to marshal a secret (use Encode)")

	// ErrTicketInvalid is returned by SealTicket for a ticket whose times are
	// zero, whose ExpiresAt is not after IssuedAt, or that would live longer
	// than MaxTicketLifetime.
	ErrTicketInvalid = errors.New("invalid ticket")

	// ErrTicketTooLarge is returned by SealTicket when the sealed ticket would
	// be longer than MaxTicketBytes (usually: the Payload is too big).
	ErrTicketTooLarge = errors.New("ticket too large")

	// ErrTicketMalformed is returned by OpenTicket for a ticket that is not
	// base64, too short, too long, of an unknown version, or whose content
	// does not decode.
	ErrTicketMalformed = errors.New("malformed ticket")

	// ErrTicketUnknownKey is returned by OpenTicket when the ticket's key id
	// matches no secret in the keyring (sealed by another cluster, or under a
	// secret already removed).
	ErrTicketUnknownKey = errors.New("ticket sealed under an unknown key")

	// ErrTicketTampered is returned by OpenTicket when authentication fails:
	// the ticket was altered or forged.
	ErrTicketTampered = errors.New("ticket tampered")

	// ErrTicketExpired is returned by OpenTicket when now is at or after the
	// ticket's ExpiresAt.
	ErrTicketExpired = errors.New("ticket expired")

	// ErrTicketNotYetValid is returned by OpenTicket when the ticket's IssuedAt
	// is more than MaxClockSkew (OpenTicketWithin: TicketLimits.MaxOffset)
	// after now.
	ErrTicketNotYetValid = errors.New("ticket not yet valid")

	// ErrTicketLifetime is returned by OpenTicket when the ticket's lifetime
	// (ExpiresAt − IssuedAt) is more than MaxTicketLifetime plus
	// MaxClockSkew (OpenTicketWithin: TicketLimits.MaxLifetime plus
	// MaxOffset): sealed to live longer than the cluster allows.
	ErrTicketLifetime = errors.New("ticket lifetime over the cluster's limit")
)
