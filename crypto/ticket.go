package crypto

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// MaxTicketBytes is the longest sealed ticket, in encoded characters.
	// SealTicket refuses to produce a longer one; OpenTicket refuses to
	// decode one. It keeps hand-off URLs well under common URL limits.
	MaxTicketBytes = 4096

	// MaxClockSkew is how far in the future a ticket's IssuedAt may be, as
	// seen by the opening node, before OpenTicket refuses it as not yet
	// valid: the allowance for clocks that disagree between sites. It is
	// TicketLimits.MaxOffset's default, and the same five seconds as
	// session.DefaultMaxOffset (the packages are leaves: neither imports the
	// other).
	MaxClockSkew = 5 * time.Second

	// MaxTicketLifetime is the longest lifetime (ExpiresAt − IssuedAt) of
	// any ticket ussync seals: a verification link lives at most a day
	// (verification.code_ttl), a hand-off ticket at most ten minutes
	// (sync.ticket_ttl). SealTicket refuses a longer one, and it is
	// TicketLimits.MaxLifetime's default.
	MaxTicketLifetime = 24 * time.Hour
)

// TicketLimits are the cluster's bounds on the tickets a node opens
// (OpenTicketWithin). The zero value is the widest: MaxTicketLifetime and
// MaxClockSkew.
type TicketLimits struct {
	// MaxLifetime is the longest ExpiresAt − IssuedAt accepted, before
	// MaxOffset is added: sync.ticket_ttl for a hand-off ticket,
	// verification.code_ttl for a verification link. Zero or negative means
	// MaxTicketLifetime.
	MaxLifetime time.Duration
	// MaxOffset is the largest offset between two nodes' wall clocks the
	// cluster tolerates: IssuedAt may be this far after now, and a lifetime
	// this much over MaxLifetime. Zero or negative means MaxClockSkew.
	MaxOffset time.Duration
}

func (l TicketLimits) withDefaults() TicketLimits {
	if l.MaxLifetime <= 0 {
		l.MaxLifetime = MaxTicketLifetime
	}
	if l.MaxOffset <= 0 {
		l.MaxOffset = MaxClockSkew
	}
	return l
}

// Wire layout of a sealed ticket (before base64):
//
//	version (1) | key id (8) | nonce (24) | ciphertext (inner ticket + 16-byte tag)
//
// version and key id are the AEAD associated data.
const (
	ticketVersion   = 1
	ticketHeaderLen = 1 + fingerprintSize
	ticketNonceLen  = chacha20poly1305.NonceSizeX
	ticketMinLen    = ticketHeaderLen + ticketNonceLen + chacha20poly1305.Overhead
)

var ticketEncoding = base64.RawURLEncoding.Strict()

// Ticket is the hand-off of a session to another site, carried by the
// browser in a URL. Seal it with Keyring.SealTicket, open it with
// Keyring.OpenTicket. Token is a secret: a Ticket prints and logs without it
// and without Payload.
type Ticket struct {
	// ID is unique per ticket (the target's replay cache key). SealTicket sets
	// it to 16 random bytes in hex when empty.
	ID string
	// Target is the name of the node the ticket is for. A chain ticket
	// leaves it empty and names its nodes in Route instead.
	Target string
	// Route, when not empty, makes this a chain ticket: one ticket for a
	// browser's visit to each of these nodes, in this order. Each node
	// accepts it once (its own replay cache), which is what one ticket per
	// node gave, for one seal and one copy of the payload in the URL. The
	// names are distinct (a chain never comes back to a node).
	Route []string
	// Bindings, when not empty, bind the ticket to one browser: Bindings[i]
	// is the BindingOf the nonce the browser holds on Route[i] (on Target,
	// for a ticket with one target: then it has one element). The node
	// checks the browser's nonce cookie against it before it accepts the
	// ticket, so a ticket copied out of one browser is refused in any
	// other (docs/handoff.md, "Bound to the browser").
	Bindings []Binding
	// SessionID is the session's id (SessionID of Token).
	SessionID string
	// Token is a session token the target may set in its cookie. Secret.
	// Tickets of this version leave it empty (each target mints its own
	// token); it is kept so that the encoding stays one.
	Token string
	// ClientIP, when not empty, binds the ticket to the client address.
	ClientIP string
	// IssuedAt is when the ticket was sealed.
	IssuedAt time.Time
	// ExpiresAt is when the ticket stops being accepted; it must be after
	// IssuedAt.
	ExpiresAt time.Time
	// Payload is opaque to this package (the session record). May be nil.
	Payload []byte
}

// String describes the ticket without its Token or Payload.
func (t Ticket) String() string {
	return fmt.Sprintf("ticket(id=%s target=%s session=%s ip=%s issued=%s expires=%s payload=%dB)",
		t.ID, t.Targets(), t.SessionID, t.ClientIP,
		t.IssuedAt.UTC().Format(time.RFC3339Nano), t.ExpiresAt.UTC().Format(time.RFC3339Nano), len(t.Payload))
}

// Targets names the ticket's node, or a chain ticket's nodes joined by
// "," (for logs).
func (t Ticket) Targets() string {
	if len(t.Route) > 0 {
		return strings.Join(t.Route, ",")
	}
	return t.Target
}

// For reports whether the node name may redeem the ticket, and its place
// in the route (0 for a ticket with one Target).
func (t Ticket) For(name string) (int, bool) {
	if len(t.Route) == 0 {
		return 0, name != "" && t.Target == name
	}
	i := slices.Index(t.Route, name)
	return i, i >= 0 && name != ""
}

// repeats reports whether a name appears twice in route.
func repeats(route []string) bool {
	seen := make(map[string]bool, len(route))
	for _, n := range route {
		if seen[n] {
			return true
		}
		seen[n] = true
	}
	return false
}

// GoString returns the same as String, so %#v does not reveal the token.
func (t Ticket) GoString() string { return t.String() }

// Format writes String for every fmt verb.
func (t Ticket) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, t.String()) }

// LogValue implements slog.LogValuer, without the Token or Payload.
func (t Ticket) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", t.ID),
		slog.String("target", t.Targets()),
		slog.String("session", t.SessionID),
		slog.String("ip", t.ClientIP),
		slog.Time("issued", t.IssuedAt),
		slog.Time("expires", t.ExpiresAt),
		slog.Int("payload_bytes", len(t.Payload)),
	)
}

// SealTicket seals t under the ticket key of the primary secret and returns
// it as URL-safe unpadded base64, at most MaxTicketBytes long. An empty ID is
// filled with a random one. A ticket with a zero time, whose ExpiresAt is
// not after IssuedAt, that would live longer than MaxTicketLifetime, with
// both a Target and a Route, with a name twice in its Route, or with
// Bindings that do not match its Route (one per name) or Target (one) is
// ErrTicketInvalid; one that would be too long is ErrTicketTooLarge.
func (k *Keyring) SealTicket(t Ticket) (string, error) {
	if t.Target != "" && len(t.Route) > 0 {
		return "", fmt.Errorf("seal ticket: %w: both a target and a route", ErrTicketInvalid)
	}
	if n := len(t.Bindings); n != 0 && n != max(1, len(t.Route)) {
		return "", fmt.Errorf("seal ticket: %w: %d bindings for %d targets", ErrTicketInvalid, n, max(1, len(t.Route)))
	}
	if repeats(t.Route) {
		return "", fmt.Errorf("seal ticket: %w: a node twice in the route", ErrTicketInvalid)
	}
	if t.IssuedAt.IsZero() || t.ExpiresAt.IsZero() {
		return "", fmt.Errorf("seal ticket: %w: zero issue or expiry time", ErrTicketInvalid)
	}
	if !t.ExpiresAt.After(t.IssuedAt) {
		return "", fmt.Errorf("seal ticket: %w: expires at or before its issue time", ErrTicketInvalid)
	}
	if life := t.ExpiresAt.Sub(t.IssuedAt); life > MaxTicketLifetime {
		return "", fmt.Errorf("seal ticket: %w: lives %s, longer than %s", ErrTicketInvalid, life, MaxTicketLifetime)
	}
	if t.ID == "" {
		id, err := randomHex(16)
		if err != nil {
			return "", fmt.Errorf("seal ticket: %w", err)
		}
		t.ID = id
	}
	plain := appendTicket(make([]byte, 0, 128+len(t.Payload)), &t)
	sealedLen := ticketMinLen + len(plain)
	if ticketEncoding.EncodedLen(sealedLen) > MaxTicketBytes {
		return "", fmt.Errorf("seal ticket: %w: %d characters, limit %d",
			ErrTicketTooLarge, ticketEncoding.EncodedLen(sealedLen), MaxTicketBytes)
	}

	rk := k.primary()
	var ad [ticketHeaderLen]byte
	ad[0] = ticketVersion
	copy(ad[1:], rk.id[:])
	var nonce [ticketNonceLen]byte
	if _, err := io.ReadFull(randReader, nonce[:]); err != nil {
		return "", fmt.Errorf("seal ticket: nonce: %w", err)
	}
	out := make([]byte, 0, sealedLen)
	out = append(out, ad[:]...)
	out = append(out, nonce[:]...)
	out = rk.ticket.Seal(out, nonce[:], plain, ad[:])
	clear(plain)
	return ticketEncoding.EncodeToString(out), nil
}

// OpenTicket is OpenTicketWithin with the widest limits (the zero
// TicketLimits): a lifetime of at most MaxTicketLifetime plus MaxClockSkew,
// issued at most MaxClockSkew after now. A node that knows its cluster's
// ticket TTL should call OpenTicketWithin.
func (k *Keyring) OpenTicket(s string, now time.Time) (Ticket, error) {
	return k.OpenTicketWithin(s, now, TicketLimits{})
}

// OpenTicketWithin authenticates and decodes a ticket sealed by SealTicket
// under any secret of the keyring, and checks its times against now and
// lim. Each refusal wraps its own sentinel: ErrTicketMalformed,
// ErrTicketUnknownKey, ErrTicketTampered, ErrTicketExpired (now at or after
// ExpiresAt), ErrTicketNotYetValid (IssuedAt more than lim.MaxOffset after
// now), ErrTicketLifetime (ExpiresAt − IssuedAt more than lim.MaxLifetime
// plus lim.MaxOffset: a ticket sealed to live longer than the cluster
// allows, which only a holder of the cluster secret can make). On error the
// returned Ticket is zero. Times come back in UTC, without monotonic
// reading. Target, client IP and replay checks are the caller's.
func (k *Keyring) OpenTicketWithin(s string, now time.Time, lim TicketLimits) (Ticket, error) {
	lim = lim.withDefaults()
	if s == "" {
		return Ticket{}, fmt.Errorf("open ticket: %w: empty", ErrTicketMalformed)
	}
	if len(s) > MaxTicketBytes {
		return Ticket{}, fmt.Errorf("open ticket: %w: longer than %d characters", ErrTicketMalformed, MaxTicketBytes)
	}
	raw, err := ticketEncoding.DecodeString(s)
	if err != nil {
		return Ticket{}, fmt.Errorf("open ticket: %w: not URL-safe base64", ErrTicketMalformed)
	}
	if len(raw) < ticketMinLen {
		return Ticket{}, fmt.Errorf("open ticket: %w: too short", ErrTicketMalformed)
	}
	if raw[0] != ticketVersion {
		return Ticket{}, fmt.Errorf("open ticket: %w: unknown version %d", ErrTicketMalformed, raw[0])
	}
	ad := raw[:ticketHeaderLen]
	id := raw[1:ticketHeaderLen]
	nonce := raw[ticketHeaderLen : ticketHeaderLen+ticketNonceLen]
	ct := raw[ticketHeaderLen+ticketNonceLen:]

	var plain []byte
	found, opened := false, false
	for _, rk := range k.snapshot() {
		if string(rk.id[:]) != string(id) {
			continue
		}
		found = true
		// Open into a fresh buffer: ct is still needed if another key with
		// the same id (a 64-bit collision) has to be tried.
		if p, err := rk.ticket.Open(nil, nonce, ct, ad); err == nil {
			plain, opened = p, true
			break
		}
	}
	switch {
	case !found:
		return Ticket{}, fmt.Errorf("open ticket: %w: key id %x", ErrTicketUnknownKey, id)
	case !opened:
		return Ticket{}, fmt.Errorf("open ticket: %w", ErrTicketTampered)
	}

	t, err := decodeTicket(plain)
	clear(plain)
	if err != nil {
		return Ticket{}, fmt.Errorf("open ticket: %w: %w", ErrTicketMalformed, err)
	}
	if !t.ExpiresAt.After(t.IssuedAt) {
		return Ticket{}, fmt.Errorf("open ticket: %w: expires at or before its issue time", ErrTicketMalformed)
	}
	if !now.Before(t.ExpiresAt) {
		return Ticket{}, fmt.Errorf("open ticket: %w: expired at %s", ErrTicketExpired, t.ExpiresAt.Format(time.RFC3339Nano))
	}
	if t.IssuedAt.After(now.Add(lim.MaxOffset)) {
		return Ticket{}, fmt.Errorf("open ticket: %w: issued at %s, %s ahead of this node's clock",
			ErrTicketNotYetValid, t.IssuedAt.Format(time.RFC3339Nano), t.IssuedAt.Sub(now))
	}
	if life := t.ExpiresAt.Sub(t.IssuedAt); life > lim.MaxLifetime+lim.MaxOffset {
		return Ticket{}, fmt.Errorf("open ticket: %w: lives %s, limit %s", ErrTicketLifetime, life, lim.MaxLifetime+lim.MaxOffset)
	}
	return t, nil
}

// Inner ticket encoding, version 1 (inside the AEAD):
//
//	flags (1)
//	ID        16 raw bytes if flagIDHex, else string
//	Target    string; if flagRoute, a uvarint count and that many
//	          strings (Route) instead
//	Bindings  if flagBindings: BindingSize raw bytes per name of Route
//	          (one for a Target)
//	SessionID 32 raw bytes if flagSessionHex, else string
//	Token     32 raw bytes if flagTokenB64, else string
//	ClientIP  1-byte length (4 or 16) + address if flagIPRaw, else string
//	IssuedAt  varint Unix seconds, uvarint nanoseconds
//	ExpiresAt varint Unix seconds, uvarint nanoseconds
//	Payload   string
//
// where string is a uvarint length and the bytes. The raw forms apply only
// when they give back exactly the same string, so every ticket round-trips;
// they make a typical ticket about 90 characters shorter. Unknown flags and
// trailing bytes are refused: a change of layout is a new ticketVersion.
const (
	flagIDHex = 1 << iota
	flagSessionHex
	flagTokenB64
	flagIPRaw
	flagRoute
	flagBindings
	flagsKnown = flagIDHex | flagSessionHex | flagTokenB64 | flagIPRaw | flagRoute | flagBindings
)

func appendTicket(b []byte, t *Ticket) []byte {
	id, idRaw := hexBytes(t.ID, 16)
	sid, sidRaw := hexBytes(t.SessionID, 32)
	tok, tokRaw := b64Bytes(t.Token, 32)
	ip, ipRaw := ipBytes(t.ClientIP)
	var flags byte
	if idRaw {
		flags |= flagIDHex
	}
	if sidRaw {
		flags |= flagSessionHex
	}
	if tokRaw {
		flags |= flagTokenB64
	}
	if ipRaw {
		flags |= flagIPRaw
	}
	if len(t.Route) > 0 {
		flags |= flagRoute
	}
	if len(t.Bindings) > 0 {
		flags |= flagBindings
	}
	b = append(b, flags)
	b = appendRawOrString(b, idRaw, id, t.ID)
	if len(t.Route) > 0 {
		b = binary.AppendUvarint(b, uint64(len(t.Route)))
		for _, n := range t.Route {
			b = appendString(b, n)
		}
	} else {
		b = appendString(b, t.Target)
	}
	for _, c := range t.Bindings {
		b = append(b, c[:]...)
	}
	b = appendRawOrString(b, sidRaw, sid, t.SessionID)
	b = appendRawOrString(b, tokRaw, tok, t.Token)
	if ipRaw {
		b = append(b, byte(len(ip)))
		b = append(b, ip...)
	} else {
		b = appendString(b, t.ClientIP)
	}
	b = appendTime(b, t.IssuedAt)
	b = appendTime(b, t.ExpiresAt)
	b = binary.AppendUvarint(b, uint64(len(t.Payload)))
	return append(b, t.Payload...)
}

func appendRawOrString(b []byte, raw bool, rawBytes []byte, s string) []byte {
	if raw {
		return append(b, rawBytes...)
	}
	return appendString(b, s)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// hexBytes decodes s if it is exactly n bytes in lower-case hex.
func hexBytes(s string, n int) ([]byte, bool) {
	if len(s) != 2*n {
		return nil, false
	}
	b, err := hex.DecodeString(s)
	if err != nil || hex.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// b64Bytes decodes s if it is exactly n bytes in canonical URL-safe unpadded
// base64 (the form NewToken returns).
func b64Bytes(s string, n int) ([]byte, bool) {
	if len(s) != base64.RawURLEncoding.EncodedLen(n) {
		return nil, false
	}
	b, err := ticketEncoding.DecodeString(s)
	if err != nil || len(b) != n || base64.RawURLEncoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// ipBytes returns the address bytes of s if s is an IP address in the form
// netip.Addr.String gives back.
func ipBytes(s string) ([]byte, bool) {
	if s == "" {
		return nil, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.String() != s {
		return nil, false
	}
	return a.AsSlice(), true
}

// ticketDecoder reads the inner encoding; the first error sticks.
type ticketDecoder struct {
	b   []byte
	err error
}

func (d *ticketDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s", what)
	}
	d.b = nil
}

func (d *ticketDecoder) raw(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail(what)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *ticketDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *ticketDecoder) bytes(what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	return d.raw(int(n), what)
}

func (d *ticketDecoder) string(raw bool, n int, what string, enc func([]byte) string) string {
	if raw {
		b := d.raw(n, what)
		if d.err != nil {
			return ""
		}
		return enc(b)
	}
	return string(d.bytes(what))
}

func (d *ticketDecoder) time(what string) time.Time {
	if d.err != nil {
		return time.Time{}
	}
	sec, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return time.Time{}
	}
	d.b = d.b[n:]
	nsec := d.uvarint(what)
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= uint64(time.Second) {
		d.fail(what)
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func decodeTicket(b []byte) (Ticket, error) {
	if len(b) == 0 {
		return Ticket{}, fmt.Errorf("empty content")
	}
	flags := b[0]
	if flags&^flagsKnown != 0 {
		return Ticket{}, fmt.Errorf("unknown flags %#x", flags)
	}
	d := &ticketDecoder{b: b[1:]}
	var t Ticket
	t.ID = d.string(flags&flagIDHex != 0, 16, "id", hex.EncodeToString)
	if flags&flagRoute != 0 {
		n := d.uvarint("route")
		if d.err == nil && (n == 0 || n > uint64(len(d.b))) { // each name takes a byte at least
			d.fail("route")
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			t.Route = append(t.Route, string(d.bytes("route")))
		}
		if d.err == nil && repeats(t.Route) {
			d.fail("route")
		}
	} else {
		t.Target = string(d.bytes("target"))
	}
	if flags&flagBindings != 0 {
		n := max(1, len(t.Route))
		raw := d.raw(n*BindingSize, "bindings")
		if d.err == nil {
			t.Bindings = make([]Binding, n)
			for i := range t.Bindings {
				copy(t.Bindings[i][:], raw[i*BindingSize:])
			}
		}
	}
	t.SessionID = d.string(flags&flagSessionHex != 0, 32, "session id", hex.EncodeToString)
	t.Token = d.string(flags&flagTokenB64 != 0, 32, "token", base64.RawURLEncoding.EncodeToString)
	if flags&flagIPRaw != 0 {
		var n int
		if l := d.raw(1, "client ip"); l != nil {
			n = int(l[0])
		}
		if d.err == nil && n != 4 && n != 16 {
			d.fail("client ip")
		}
		if ip := d.raw(n, "client ip"); d.err == nil {
			a, _ := netip.AddrFromSlice(ip)
			t.ClientIP = a.String()
		}
	} else {
		t.ClientIP = string(d.bytes("client ip"))
	}
	t.IssuedAt = d.time("issued at")
	t.ExpiresAt = d.time("expires at")
	if p := d.bytes("payload"); len(p) > 0 {
		t.Payload = append([]byte(nil), p...)
	}
	if d.err != nil {
		return Ticket{}, d.err
	}
	if len(d.b) != 0 {
		return Ticket{}, fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return t, nil
}
