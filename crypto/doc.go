// Package crypto owns the cluster secrets of ussync and everything derived
// from them: the keyring and its rotation, the memberlist gossip keys, the
// browser hand-off tickets, session and API tokens, and e-mail verification
// codes.
//
// Guarantees:
//
//   - A raw Secret is never used as a key. Every use has its own key derived
//     with HKDF-SHA256 and a distinct info label ("ussync gossip v1",
//     "ussync ticket v1", "ussync code v1", "ussync fingerprint v1"), so a key
//     leaked from one use reveals nothing about another or about the secret.
//   - A Secret never prints: String, GoString, Format (every fmt verb) and the
//     slog LogValue show only "secret:<fingerprint>", and MarshalText refuses.
//     A *Keyring prints only fingerprints. Errors never echo secret input.
//     fmt cannot reach methods on unexported struct fields, so do not keep a
//     Secret in an unexported field of a struct that may be printed.
//   - Tickets are sealed with XChaCha20-Poly1305 under the ticket key of the
//     keyring's primary secret at sealing time, with a random 24-byte nonce,
//     and open under any secret in the ring, so rotation (Install on every
//     node, then Use, then Remove) never breaks a hand-off in flight. The wire
//     header (version and key id) is authenticated. OpenTicket refuses with a
//     distinct sentinel per reason: malformed, unknown key, tampered, expired,
//     not yet valid, living longer than the cluster allows (TicketLimits:
//     the ticket TTL plus the max offset between clocks). Target, client IP
//     and replay checks are the caller's.
//   - Every comparison of secret material (tokens, API token hashes, code
//     MACs) is constant time. Session tokens, API tokens and verification
//     codes are meant to be stored only as hashes or MACs: SessionID,
//     HashToken, CodeMAC.
//
// A Keyring is safe for concurrent use. Secret, TokenHash and Ticket are plain
// values.
//
// The package imports only the standard library and golang.org/x/crypto.
package crypto
