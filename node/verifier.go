package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// E-mail verification by code (docs/verification.md). A request stores a
// pending code for the address in the node-local store (never replicated):
// only its MAC under the cluster's code key, its expiry, its attempt count
// and the id of its one-click link. The message carries the code and the
// link; the code is typed back through the site (POST
// /v1/users/{email}/verify), the link is opened in the browser (GET
// <site>ussync/v1/verify?c=…). Either one consumes the pending code and
// marks the user verified (method "code"), which gossip carries to every
// site.
//
// No answer tells whether an address has a user: an unknown address gets
// the same 202, the same rate limits and a pending code that can never
// match (a random MAC), so wrong codes count and lock the same way. What
// differs is only that no message leaves, so a failed send (502) and the
// time a send takes happen for real users only; the private API is the
// site backend's, which should show its visitors one answer.

const (
	pathVerify = publicPrefix + "verify"
	// ticketKindVerify marks the payload of a one-click verification link.
	ticketKindVerify = "verify"
	// Node-local keys: the pending code, the send history and the failed
	// guesses of an address.
	localCodePrefix = "vcode/"
	localSendPrefix = "vsend/"
	localFailPrefix = "vfail/"
	// sendWindow is the window of verification.max_sends_per_hour.
	sendWindow = time.Hour
	// failWindow is the window of verification.max_failures_per_day.
	failWindow = 24 * time.Hour
)

var (
	// errUnchanged aborts a LocalUpdate that has nothing to write.
	errUnchanged = errors.New("unchanged")
)

// verifierConfig is what e-mail verification needs; the node wires it.
type verifierConfig struct {
	// Keyring computes code MACs and seals the links.
	Keyring *crypto.Keyring
	// Store holds the pending codes and send history (node-local keys),
	// the replay cache of links, and the clock (Store.Now) every expiry is
	// measured with.
	Store *session.Store
	// Name is this node's name: the target of the links it seals.
	Name string
	// SiteURL is this site's URL (site.url, validated): links point under it.
	SiteURL string
	// CodeTTL, MaxAttempts, ResendInterval and MaxSendsPerHour are the
	// verification section.
	CodeTTL         time.Duration
	MaxAttempts     int
	ResendInterval  time.Duration
	MaxSendsPerHour int
	// MaxFailuresPerDay is verification.max_failures_per_day: wrong codes
	// accepted for one address in any 24 hours, whatever the codes sent.
	// Zero: 2 × MaxAttempts.
	MaxFailuresPerDay int
	// MaxOffset is the cluster's max clock offset, for the links' limits.
	// Zero: crypto.MaxClockSkew.
	MaxOffset time.Duration
	// Mailer sends the messages; nil: mail is disabled (requests answer
	// 503, codes and links are still checked).
	Mailer *mailer
	// Templates render the messages; nil: the built-in ones.
	Templates *mailTemplates
	// Log receives sends and failures, never a code, a link, a password or
	// an address. Nil discards.
	Log *slog.Logger
	// Metrics receives the verification counters. Nil makes a private set.
	Metrics *Metrics
}

// verifier is e-mail verification. It is safe for concurrent use.
type verifier struct {
	verifierConfig
	checkMu  sync.Mutex             // serializes checkCode
	requests *prometheus.CounterVec // ussync_verification_requests_total{result}
	checks   *prometheus.CounterVec // ussync_verification_checks_total{via,result}
}

// newVerifier checks cfg, loads the built-in templates when none are
// given, and registers the metrics.
func newVerifier(cfg verifierConfig) (*verifier, error) {
	if cfg.Keyring == nil || cfg.Store == nil {
		return nil, errors.New("verification: keyring and store are required")
	}
	if cfg.CodeTTL <= 0 || cfg.MaxAttempts <= 0 || cfg.MaxSendsPerHour <= 0 || cfg.ResendInterval < 0 {
		return nil, errors.New("verification: code_ttl, max_attempts and max_sends_per_hour must be positive")
	}
	if _, ok := parseSite(cfg.Name, cfg.SiteURL); !ok {
		return nil, fmt.Errorf("verification: site url %q is not an absolute http(s) URL ending in /", cfg.SiteURL)
	}
	if cfg.Templates == nil {
		t, err := loadMailTemplates("")
		if err != nil {
			return nil, err
		}
		cfg.Templates = t
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.MaxFailuresPerDay <= 0 {
		cfg.MaxFailuresPerDay = 2 * cfg.MaxAttempts
	}
	v := &verifier{verifierConfig: cfg}
	v.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ussync_verification_requests_total",
		Help: `Requests for a verification code, by result: "accepted" (sent, or silently dropped for an address with no user), "rate_limited", "mail_failed" or "error".`,
	}, []string{"result"})
	v.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ussync_verification_checks_total",
		Help: `Verification attempts, by way ("code" typed, "link" opened) and result: "verified" or the refusal's error code.`,
	}, []string{"via", "result"})
	v.requests.WithLabelValues("accepted")
	v.checks.WithLabelValues("code", "verified")
	cfg.Metrics.Registry.MustRegister(v.requests, v.checks)
	return v, nil
}

// pendingCode is the node-local record of the code last sent to an
// address. The code itself is never stored.
type pendingCode struct {
	// ID is the id of the code's one-click link (its ticket ID): a link
	// is only good for the code it came with.
	ID string `json:"id"`
	// MAC is Keyring.CodeMAC(email, code); random bytes for an address
	// with no user (nothing can match).
	MAC []byte `json:"mac"`
	// Expires is the end of the code's life, Unix milliseconds of the
	// store's clock.
	Expires int64 `json:"exp"`
	// Attempts counts the wrong codes tried.
	Attempts int `json:"n,omitempty"`
}

// sendHistory is the node-local record of the messages sent to an
// address within the last sendWindow (or, under localFailPrefix, of the
// wrong codes tried for it within the last failWindow): Unix milliseconds,
// oldest first.
type sendHistory struct {
	At []int64 `json:"at"`
}

// within returns h's times after now-window, none after now (a clock set
// back does not lock out).
func (h sendHistory) within(nowMS int64, window time.Duration) []int64 {
	kept := h.At[:0]
	for _, at := range h.At {
		if at > nowMS-window.Milliseconds() {
			kept = append(kept, min(at, nowMS))
		}
	}
	return kept
}

// linkPayload is the Payload of a verification link's ticket. Its kind
// keeps it from being taken for a session ticket or a hop request, and
// those from being taken for it.
type linkPayload struct {
	Kind  string `json:"k"`
	Email string `json:"e"`
}

// send requests a code for email (normalized): rate limits first, for every
// address; then, for an address with a user, a new pending code and a
// message. It returns how long to wait when rate-limited.
func (v *verifier) send(ctx context.Context, email string) (time.Duration, error) {
	if v.Mailer == nil {
		return 0, ErrMailDisabled
	}
	now := v.Store.Now()
	wait, err := v.reserveSend(email, now)
	if err != nil {
		v.requests.WithLabelValues("error").Inc()
		return 0, err
	}
	if wait > 0 {
		v.requests.WithLabelValues(client.CodeRateLimited).Inc()
		return wait, refuse(ErrRateLimited,
			"a code was sent to this address too recently or too often; try again in %s", retrySeconds(wait)+"s")
	}

	_, err = v.Store.User(email)
	known := err == nil
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		v.requests.WithLabelValues("error").Inc()
		return 0, fmt.Errorf("read user: %w", err)
	}
	code, err := crypto.NewCode()
	if err != nil {
		return 0, err
	}
	id, err := randomHex(16)
	if err != nil {
		return 0, err
	}
	expires := now.Add(v.CodeTTL)
	rec := pendingCode{ID: id, Expires: expires.UnixMilli()}
	var msg renderedMail
	if known {
		rec.MAC = v.Keyring.CodeMAC(email, code)
		link, err := v.link(email, id, now, expires)
		if err != nil {
			return 0, err
		}
		msg, err = v.Templates.render(&mailData{
			Code: code, Link: link, Site: v.SiteURL, Email: email,
			Expires: int((v.CodeTTL + time.Minute - 1) / time.Minute),
		})
		if err != nil {
			return 0, err
		}
	} else {
		// Wrong codes for an address with no user count and lock as for
		// any other: the attempts answer nothing about the address.
		rec.MAC = make([]byte, sha256.Size)
		if _, err := rand.Read(rec.MAC); err != nil {
			return 0, err
		}
	}
	raw, err := json.Marshal(&rec)
	if err != nil {
		return 0, fmt.Errorf("encode pending code: %w", err)
	}
	// A new code replaces the last one: its attempts, its lock, its link.
	if err := v.Store.LocalPut(localCodePrefix+email, raw, v.CodeTTL); err != nil {
		return 0, fmt.Errorf("store pending code: %w", err)
	}
	if !known {
		v.requests.WithLabelValues("accepted").Inc()
		return 0, nil
	}
	// The send runs outside any store lock: it may take seconds.
	if err := v.Mailer.send(ctx, email, msg); err != nil {
		v.discard(email, id)
		v.requests.WithLabelValues(client.CodeMailFailed).Inc()
		v.Log.Warn("verification mail not sent; the code is discarded", "err", scrub(err, email))
		return 0, ErrMailFailed
	}
	v.requests.WithLabelValues("accepted").Inc()
	v.Log.Info("verification code sent", "link", id)
	return 0, nil
}

// reserveSend applies the rate limits to a send to email at now and, when
// it may go, records it. A failed send still counts: it protects the mail
// server too. It returns how long to wait when it may not.
func (v *verifier) reserveSend(email string, now time.Time) (time.Duration, error) {
	var wait time.Duration
	nowMS := now.UnixMilli()
	err := v.Store.LocalUpdate(localSendPrefix+email, sendWindow, func(old []byte) ([]byte, error) {
		var h sendHistory
		if old != nil {
			_ = json.Unmarshal(old, &h) // a damaged history starts over
		}
		h.At = h.within(nowMS, sendWindow)
		if n := len(h.At); n > 0 && v.ResendInterval > 0 {
			if d := time.Duration(h.At[n-1]+v.ResendInterval.Milliseconds()-nowMS) * time.Millisecond; d > 0 {
				wait = d
			}
		}
		if len(h.At) >= v.MaxSendsPerHour {
			// The oldest send that must leave the window for one more.
			oldest := h.At[len(h.At)-v.MaxSendsPerHour]
			wait = max(wait, time.Duration(oldest+sendWindow.Milliseconds()-nowMS)*time.Millisecond)
		}
		if wait > 0 {
			return nil, errUnchanged
		}
		h.At = append(h.At, nowMS)
		return json.Marshal(&h)
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	return wait, nil
}

// retrySeconds is a Retry-After value: whole seconds, rounded up, at least 1.
func retrySeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// discard removes the pending code of email if it is still the one of
// link id (a failed send leaves no code nobody received).
func (v *verifier) discard(email, id string) {
	err := v.Store.LocalUpdate(localCodePrefix+email, v.CodeTTL, func(old []byte) ([]byte, error) {
		var rec pendingCode
		if old == nil || json.Unmarshal(old, &rec) != nil || rec.ID != id {
			return nil, errUnchanged
		}
		return nil, nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		v.Log.Error("discard an unsent verification code", "err", err)
	}
}

// checkCode checks a code typed for email (normalized): nil when it is the
// pending code's, which is then consumed; ErrInvalidCode when it is wrong
// (counted), or no code is pending, or it expired; ErrCodeLocked once
// MaxAttempts wrong codes were tried for this code (until a new code is
// requested) or MaxFailuresPerDay for the address in the last 24 hours
// (whatever new codes were sent: a resend does not reset it).
func (v *verifier) checkCode(email, code string) error {
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' { // as people copy it: "123 456", "123-456"
			return -1
		}
		return r
	}, code)
	// One check at a time on this node: the day's budget is read, then
	// spent, and parallel guesses must not overrun it. (Codes are typed by
	// people: a lock costs nothing.)
	v.checkMu.Lock()
	defer v.checkMu.Unlock()
	now := v.Store.Now().UnixMilli()
	spent, err := v.failures(email, now)
	if err != nil {
		return err
	}
	var result error
	wrong := false
	err = v.Store.LocalUpdate(localCodePrefix+email, v.CodeTTL, func(old []byte) ([]byte, error) {
		var rec pendingCode
		if old == nil {
			result = ErrInvalidCode
			return nil, errUnchanged
		}
		if json.Unmarshal(old, &rec) != nil || now >= rec.Expires {
			result = ErrInvalidCode
			return nil, nil // expired: gone, as if never sent
		}
		if rec.Attempts >= v.MaxAttempts || len(spent) >= v.MaxFailuresPerDay {
			result = ErrCodeLocked
			return nil, errUnchanged
		}
		if len(code) == crypto.CodeDigits && v.Keyring.CheckCode(email, code, rec.MAC) {
			return nil, nil // consumed: the code and its link
		}
		rec.Attempts++
		result, wrong = ErrInvalidCode, true
		return json.Marshal(&rec)
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return fmt.Errorf("check code: %w", err)
	}
	if wrong {
		h := sendHistory{At: append(spent, now)}
		raw, err := json.Marshal(&h)
		if err == nil {
			err = v.Store.LocalPut(localFailPrefix+email, raw, failWindow)
		}
		if err != nil {
			return fmt.Errorf("count a wrong code: %w", err)
		}
	}
	label := "verified"
	if result != nil {
		label = errorCode(result)
	}
	v.checks.WithLabelValues("code", label).Inc()
	return result
}

// failures returns the times of the wrong codes tried for email in the
// last failWindow (Unix ms, oldest first).
func (v *verifier) failures(email string, nowMS int64) ([]int64, error) {
	var h sendHistory
	old, err := v.Store.LocalGet(localFailPrefix + email)
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		return nil, fmt.Errorf("read wrong codes: %w", err)
	}
	if old != nil {
		_ = json.Unmarshal(old, &h) // a damaged count starts over
	}
	return h.within(nowMS, failWindow), nil
}

// pending reads the pending code of email.
func (v *verifier) pending(email string) (pendingCode, bool) {
	var rec pendingCode
	raw, err := v.Store.LocalGet(localCodePrefix + email)
	if err != nil || json.Unmarshal(raw, &rec) != nil {
		return rec, false
	}
	return rec, true
}

// scrub removes the recipient's address from an error before it is logged
// (the server's answers often quote it).
func scrub(err error, email string) string {
	return strings.ReplaceAll(err.Error(), email, "<recipient>")
}

// randomHex returns n random bytes in lower-case hex.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newVerifier builds the node's verifier from its config: the mailer (with
// the SMTP password read now), the templates (an operator's directory is
// checked now, so a broken template stops the start, not a user's request).
func (n *Node) newVerifier() (*verifier, error) {
	var m *mailer
	if n.cfg.SMTP.Enabled() {
		pw, err := n.cfg.SMTPPassword()
		if err != nil {
			return nil, err
		}
		m = newMailer(n.cfg.SMTP, pw)
	}
	tpl, err := loadMailTemplates(n.cfg.Verification.Templates)
	if err != nil {
		return nil, err
	}
	return newVerifier(verifierConfig{
		Keyring:           n.keyring,
		Store:             n.store,
		Name:              n.cfg.Node.Name,
		SiteURL:           n.cfg.Site.URL,
		CodeTTL:           time.Duration(n.cfg.Verification.CodeTTL),
		MaxAttempts:       n.cfg.Verification.MaxAttempts,
		ResendInterval:    time.Duration(n.cfg.Verification.ResendInterval),
		MaxSendsPerHour:   n.cfg.Verification.MaxSendsPerHour,
		MaxFailuresPerDay: n.cfg.Verification.MaxFailuresPerDay,
		MaxOffset:         time.Duration(n.cfg.Cluster.MaxClockOffset),
		Mailer:            m,
		Templates:         tpl,
		Log:               n.log,
		Metrics:           n.metrics,
	})
}

// SendVerification sends a verification code and link to email, as POST
// /v1/users/{email}/verification does (the admin page's "resend code"):
// nil when the message was sent, or when the address has no user (nothing
// is sent, and nothing says so). Otherwise session.ErrInvalidEmail,
// ErrRateLimited (its message says when to retry), ErrMailFailed (the
// cause is logged), ErrMailDisabled; or another error (store failure). It
// blocks for the send, at most smtp.timeout per step or until ctx ends.
// Call it after Start.
func (n *Node) SendVerification(ctx context.Context, email string) error {
	if n.verify == nil {
		return errors.New("send verification: the node is not started")
	}
	e, err := session.NormalizeEmail(email)
	if err != nil {
		return refuse(session.ErrInvalidEmail, "not a valid address (%v)", err)
	}
	_, err = n.verify.send(ctx, e)
	return err
}
