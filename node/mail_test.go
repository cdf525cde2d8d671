package node

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	mail "github.com/wneessen/go-mail"
)

// SMTPSink is a real SMTP server (emersion/go-smtp) on 127.0.0.1 that keeps
// every message it accepts. Exported for the external tests of the package
// (verify_test.go); it exists in test builds only.
type SMTPSink struct {
	Host string
	Port int
	// Username and Password, when set, are required (AUTH PLAIN) before
	// MAIL FROM.
	Username, Password string

	srv *smtp.Server
	mu  struct {
		sync.Mutex
		msgs    []SinkMessage
		failing error
	}
}

// SinkMessage is one message the sink received.
type SinkMessage struct {
	From string
	To   []string
	Data []byte
}

// SinkOption adjusts a sink before it starts.
type SinkOption func(*SMTPSink, *smtp.Server)

// SinkAuth requires AUTH PLAIN with these credentials.
func SinkAuth(user, password string) SinkOption {
	return func(s *SMTPSink, _ *smtp.Server) { s.Username, s.Password = user, password }
}

// sinkTLS offers STARTTLS with cfg.
func sinkTLS(cfg *tls.Config) SinkOption {
	return func(_ *SMTPSink, srv *smtp.Server) { srv.TLSConfig = cfg }
}

// NewSMTPSink starts a sink on 127.0.0.1, port 0, closed at cleanup.
func NewSMTPSink(t testing.TB, opts ...SinkOption) *SMTPSink {
	t.Helper()
	s := &SMTPSink{}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: s}, nil
	}))
	s.srv.Domain = "sink.localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	s.srv.MaxMessageBytes = 1 << 20
	s.srv.ErrorLog = testLogger{t}
	for _, o := range opts {
		o(s, s.srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sink: %v", err)
	}
	s.Host = "127.0.0.1"
	s.Port = ln.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		s.srv.Close()
		<-done
	})
	return s
}

// SMTPSection is an smtp: section for this sink: plain text (no TLS), and
// its credentials if it has some.
func (s *SMTPSink) SMTPSection() SMTPSection {
	c := DefaultConfig().SMTP
	c.Host, c.Port, c.From, c.StartTLS = s.Host, s.Port, "Site A <no-reply@site-a.example>", StartTLSNone
	c.Username, c.Password = s.Username, s.Password
	c.Timeout = Duration(5 * time.Second)
	return c
}

// Messages returns the messages received so far.
func (s *SMTPSink) Messages() []SinkMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SinkMessage(nil), s.mu.msgs...)
}

// Fail makes the sink refuse (after reading) every message with err; nil
// accepts again. A refused message is still kept, so tests can see what
// it held.
func (s *SMTPSink) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.failing = err
}

type sinkSession struct {
	sink   *SMTPSink
	authed bool
	from   string
	to     []string
}

func (ss *sinkSession) AuthMechanisms() []string {
	if ss.sink.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pw string) error {
		if user != ss.sink.Username || pw != ss.sink.Password {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.sink.Username != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	ss.sink.mu.msgs = append(ss.sink.mu.msgs, SinkMessage{From: ss.from, To: ss.to, Data: b})
	if ss.sink.mu.failing != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: ss.sink.mu.failing.Error()}
	}
	return nil
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }

type testLogger struct{ t testing.TB }

func (l testLogger) Printf(f string, v ...any) { l.t.Logf("smtp sink: "+f, v...) }
func (l testLogger) Println(v ...any)          { l.t.Log(append([]any{"smtp sink:"}, v...)...) }

// ParsedMail is a verification message taken apart.
type ParsedMail struct {
	Header     netmail.Header
	Subject    string // decoded (RFC 2047)
	Text, HTML string
	Code, Link string
}

var (
	reCode = regexp.MustCompile(`\b(\d{6})\b`)
	reLink = regexp.MustCompile(`https?://[^\s"<>]+/ussync/v1/verify\?c=[A-Za-z0-9_-]+`)
)

// ParseMail parses a message as a mail client would: the headers, then
// the multipart/alternative body with its text and HTML parts (transfer
// encodings undone), and finds the code and the link in the text part.
func ParseMail(t testing.TB, data []byte) ParsedMail {
	t.Helper()
	m, err := netmail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, data)
	}
	out := ParsedMail{Header: m.Header}
	if out.Subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil {
		t.Fatalf("Subject %q: %v", m.Header.Get("Subject"), err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q, want multipart/alternative", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch pt {
		case "text/plain":
			out.Text = string(b)
		case "text/html":
			out.HTML = string(b)
		default:
			t.Fatalf("unexpected part %q", pt)
		}
	}
	if out.Text == "" || out.HTML == "" {
		t.Fatalf("message lacks a part: text %d bytes, html %d bytes", len(out.Text), len(out.HTML))
	}
	if c := reCode.FindStringSubmatch(out.Text); c != nil {
		out.Code = c[1]
	}
	out.Link = reLink.FindString(out.Text)
	return out
}

func TestMailTemplates(t *testing.T) {
	d := mailData{Code: "042917", Link: "https://a.example/ussync/v1/verify?c=AbC-_9", Site: "https://a.example/", Email: "<b>x</b>@a.example", Expires: 15}

	t.Run("built-in", func(t *testing.T) {
		mt, err := loadMailTemplates("")
		if err != nil {
			t.Fatal(err)
		}
		m, err := mt.render(&d)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "Your verification code" {
			t.Errorf("subject %q", m.Subject)
		}
		for _, part := range []string{m.Text, m.HTML} {
			if !strings.Contains(part, d.Code) || !strings.Contains(part, d.Link) || !strings.Contains(part, "15 minutes") {
				t.Errorf("a part lacks the code, the link or the lifetime:\n%s", part)
			}
		}
		if strings.Contains(m.HTML, "<b>x</b>") {
			t.Error("the HTML part does not escape")
		}
	})

	t.Run("override", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, mailTextTemplate), []byte(`{{define "subject"}}  Ihr Code:
{{.Code}} {{end}}Code {{.Code}} für {{.Email}} auf {{.Site}}, {{.Expires}} Minuten: {{.Link}}`), 0o600)
		mt, err := loadMailTemplates(dir)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mt.render(&d)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "Ihr Code: 042917" {
			t.Errorf("subject %q (want one line, spaces folded)", m.Subject)
		}
		if want := "Code 042917 für <b>x</b>@a.example auf https://a.example/, 15 Minuten: " + d.Link; m.Text != want {
			t.Errorf("text %q, want %q", m.Text, want)
		}
		if !strings.Contains(m.HTML, "Verify my e-mail address") {
			t.Error("the HTML part is not the built-in one")
		}
	})

	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name  string
			files map[string]string
			want  string
		}{
			{"no such dir", nil, "no such file"},
			{"empty dir", map[string]string{}, "holds neither"},
			{"syntax", map[string]string{mailHTMLTemplate: "{{.Code"}, "parse"},
			{"unknown field", map[string]string{mailTextTemplate: "{{.Password}}"}, "Password"},
			{"empty subject", map[string]string{mailTextTemplate: `{{define "subject"}} {{end}}x`}, "subject"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "tpl")
				if tt.files != nil {
					os.Mkdir(dir, 0o700)
					for name, body := range tt.files {
						os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)
					}
				}
				_, err := loadMailTemplates(dir)
				if err == nil || !strings.HasPrefix(err.Error(), "verification.templates:") || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("loadMailTemplates = %v, want a verification.templates error about %q", err, tt.want)
				}
			})
		}
	})
}

func TestMailer_Send(t *testing.T) {
	msg := renderedMail{Subject: "Your verification code", Text: "code 123456\n", HTML: "<p>code 123456</p>"}
	const user, password = "relay-user", "s3cret-smtp-passw0rd"

	t.Run("STARTTLS mandatory, AUTH PLAIN over TLS", func(t *testing.T) {
		tc := NewTestCert(t)
		srvTLS, cliTLS := tc.Server, &tls.Config{RootCAs: tc.Roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		sink := NewSMTPSink(t, SinkAuth(user, password), sinkTLS(srvTLS))
		cfg := sink.SMTPSection()
		cfg.StartTLS = StartTLSMandatory
		m := newMailer(cfg, password)
		m.extra = []mail.Option{mail.WithTLSConfig(cliTLS)}
		if err := m.send(context.Background(), "user@b.example", msg); err != nil {
			t.Fatal(err)
		}
		got := sink.Messages()
		if len(got) != 1 || len(got[0].To) != 1 || got[0].To[0] != "user@b.example" || got[0].From != "no-reply@site-a.example" {
			t.Fatalf("received %+v", got)
		}
		pm := ParseMail(t, got[0].Data)
		if pm.Subject != msg.Subject || pm.Header.Get("Auto-Submitted") != "auto-generated" ||
			!strings.Contains(pm.Header.Get("From"), "no-reply@site-a.example") {
			t.Errorf("headers: %v", pm.Header)
		}
		if pm.Code != "123456" || !strings.Contains(pm.HTML, "<p>code 123456</p>") {
			t.Errorf("parts: text %q html %q", pm.Text, pm.HTML)
		}
	})

	t.Run("STARTTLS mandatory refuses a server without it", func(t *testing.T) {
		sink := NewSMTPSink(t)
		cfg := sink.SMTPSection()
		cfg.StartTLS = StartTLSMandatory
		err := newMailer(cfg, "").send(context.Background(), "user@b.example", msg)
		if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
			t.Errorf("send = %v, want a STARTTLS error", err)
		}
		if n := len(sink.Messages()); n != 0 {
			t.Errorf("%d messages went out in clear", n)
		}
	})

	t.Run("opportunistic falls back to plain text", func(t *testing.T) {
		sink := NewSMTPSink(t)
		cfg := sink.SMTPSection()
		cfg.StartTLS = StartTLSOpportunistic
		if err := newMailer(cfg, "").send(context.Background(), "user@b.example", msg); err != nil {
			t.Fatal(err)
		}
		if n := len(sink.Messages()); n != 1 {
			t.Errorf("%d messages", n)
		}
	})

	t.Run("wrong password: an error without the password", func(t *testing.T) {
		sink := NewSMTPSink(t, SinkAuth(user, password))
		cfg := sink.SMTPSection()
		const wrong = "not-the-right-pw-4711"
		err := newMailer(cfg, wrong).send(context.Background(), "user@b.example", msg)
		if err == nil || !strings.Contains(err.Error(), "535") {
			t.Fatalf("send = %v, want an authentication failure", err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("the error holds the password: %v", err)
		}
	})

	t.Run("unreachable server", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cfg := DefaultConfig().SMTP
		cfg.Host, cfg.Port, cfg.From, cfg.StartTLS = "127.0.0.1", port, "a@a.example", StartTLSNone
		err = newMailer(cfg, "").send(context.Background(), "user@b.example", msg)
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) {
			t.Errorf("send = %v, want a dial error naming the server", err)
		}
	})

	t.Run("disabled without a host", func(t *testing.T) {
		if m := newMailer(DefaultConfig().SMTP, ""); m != nil {
			t.Error("a mailer without smtp.host")
		}
	})
}
