package node

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"time"

	mail "github.com/wneessen/go-mail"
)

// Mail template files: built in (templates/), or replaced one by one by
// the files of the same name in verification.templates.
const (
	mailTextTemplate = "verify.txt.tmpl"
	mailHTMLTemplate = "verify.html.tmpl"
	// subjectTemplate is the template the text file may define for the
	// Subject line.
	subjectTemplate = "subject"
	// defaultSubject is the Subject when the text template defines none.
	defaultSubject = "Your verification code"
	// maxSubjectBytes bounds a rendered Subject (one line, no folding games).
	maxSubjectBytes = 200
)

//go:embed templates/verify.txt.tmpl templates/verify.html.tmpl templates/verify_page.html.tmpl templates/step_onward.html.tmpl
var templateFS embed.FS

// mailData is what the message templates see.
type mailData struct {
	// Code is the 6-digit code the user types.
	Code string
	// Link is the one-click verification URL (<site url>ussync/v1/verify?c=…).
	Link string
	// Site is the site's URL (site.url).
	Site string
	// Email is the address being verified.
	Email string
	// Expires is the code's lifetime in minutes.
	Expires int
}

// mailTemplates are the two parts of the verification message. They are
// safe for concurrent use once loaded.
type mailTemplates struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// loadMailTemplates parses the built-in templates, each replaced by the
// file of the same name in dir when dir is set and holds it. A dir that
// does not exist, that holds neither file, or a template that does not
// parse or fails on sample data is an error naming the file: it is found
// at start, not when the first user asks for a code.
func loadMailTemplates(dir string) (*mailTemplates, error) {
	read := func(name string) ([]byte, string, error) {
		builtin := "templates/" + name
		if dir != "" {
			p := filepath.Join(dir, name)
			b, err := os.ReadFile(p)
			if err == nil {
				return b, p, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, p, fmt.Errorf("verification.templates: %w", err)
			}
		}
		b, err := templateFS.ReadFile(builtin)
		return b, "built-in " + name, err
	}
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("verification.templates: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("verification.templates: %s is not a directory", dir)
		}
		_, errT := os.Stat(filepath.Join(dir, mailTextTemplate))
		_, errH := os.Stat(filepath.Join(dir, mailHTMLTemplate))
		if errT != nil && errH != nil {
			return nil, fmt.Errorf("verification.templates: %s holds neither %s nor %s", dir, mailTextTemplate, mailHTMLTemplate)
		}
	}
	tb, tname, err := read(mailTextTemplate)
	if err != nil {
		return nil, err
	}
	hb, hname, err := read(mailHTMLTemplate)
	if err != nil {
		return nil, err
	}
	mt := &mailTemplates{}
	if mt.text, err = texttemplate.New(tname).Option("missingkey=error").Parse(string(tb)); err != nil {
		return nil, fmt.Errorf("verification.templates: parse %s: %w", tname, err)
	}
	if mt.html, err = htmltemplate.New(hname).Option("missingkey=error").Parse(string(hb)); err != nil {
		return nil, fmt.Errorf("verification.templates: parse %s: %w", hname, err)
	}
	sample := mailData{Code: "123456", Link: "https://example.com/ussync/v1/verify?c=x", Site: "https://example.com/", Email: "user@example.com", Expires: 15}
	if _, err := mt.render(&sample); err != nil {
		return nil, fmt.Errorf("verification.templates: %w", err)
	}
	return mt, nil
}

// renderedMail is a message's subject and two bodies.
type renderedMail struct {
	Subject, Text, HTML string
}

// render executes the templates over d.
func (mt *mailTemplates) render(d *mailData) (renderedMail, error) {
	var out renderedMail
	var b bytes.Buffer
	if err := mt.text.Execute(&b, d); err != nil {
		return out, fmt.Errorf("render %s: %w", mt.text.Name(), err)
	}
	out.Text = b.String()
	b.Reset()
	if err := mt.html.Execute(&b, d); err != nil {
		return out, fmt.Errorf("render %s: %w", mt.html.Name(), err)
	}
	out.HTML = b.String()
	out.Subject = defaultSubject
	if st := mt.text.Lookup(subjectTemplate); st != nil {
		b.Reset()
		if err := st.Execute(&b, d); err != nil {
			return out, fmt.Errorf("render the subject of %s: %w", mt.text.Name(), err)
		}
		s := strings.Join(strings.Fields(b.String()), " ")
		if s == "" || len(s) > maxSubjectBytes {
			return out, fmt.Errorf("render the subject of %s: empty or longer than %d bytes", mt.text.Name(), maxSubjectBytes)
		}
		out.Subject = s
	}
	return out, nil
}

// mailer sends messages through the configured SMTP server, one
// connection per message (codes are rare; a pooled connection would only
// time out between them). It is safe for concurrent use.
type mailer struct {
	cfg      SMTPSection
	password string // secret: never logged, never in an error
	// extra options go after the configured ones (tests trust their own
	// certificate with mail.WithTLSConfig).
	extra []mail.Option
}

// newMailer returns the mailer of a validated smtp section, or nil when
// no host is configured (mail disabled).
func newMailer(cfg SMTPSection, password string) *mailer {
	if !cfg.Enabled() {
		return nil
	}
	return &mailer{cfg: cfg, password: password}
}

// client builds the go-mail client for one send.
func (m *mailer) client() (*mail.Client, error) {
	opts := []mail.Option{
		mail.WithPort(m.cfg.Port),
		mail.WithTimeout(time.Duration(m.cfg.Timeout)),
	}
	switch {
	case m.cfg.ImplicitTLS():
		opts = append(opts, mail.WithSSL())
	case m.cfg.StartTLS == StartTLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	case m.cfg.StartTLS == StartTLSOpportunistic:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if m.cfg.Username != "" {
		opts = append(opts,
			mail.WithSMTPAuth(smtpAuthType(m.cfg.Auth)),
			mail.WithUsername(m.cfg.Username),
			mail.WithPassword(m.password))
	}
	opts = append(opts, m.extra...)
	c, err := mail.NewClient(m.cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	return c, nil
}

func smtpAuthType(s string) mail.SMTPAuthType {
	switch s {
	case SMTPAuthLogin:
		return mail.SMTPAuthLogin
	case SMTPAuthCramMD5:
		return mail.SMTPAuthCramMD5
	case SMTPAuthScramSHA256:
		return mail.SMTPAuthSCRAMSHA256
	case SMTPAuthAutoDiscover:
		return mail.SMTPAuthAutoDiscover
	}
	return mail.SMTPAuthPlain
}

// send delivers one message with a text and an HTML part to the address
// to. It blocks until the server accepted the message, refused it, or
// ctx or the configured timeout ended. The error names the step that
// failed and the server's answer, never the password or the message.
func (m *mailer) send(ctx context.Context, to string, msg renderedMail) error {
	mm := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := mm.From(m.cfg.From); err != nil {
		return fmt.Errorf("mail: sender: %w", err)
	}
	if err := mm.To(to); err != nil {
		return fmt.Errorf("mail: recipient: %w", err)
	}
	mm.Subject(msg.Subject)
	mm.SetUserAgent("ussync")
	// RFC 3834: a robot's message; no vacation replies to the sender.
	mm.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	mm.SetBodyString(mail.TypeTextPlain, msg.Text)
	mm.AddAlternativeString(mail.TypeTextHTML, msg.HTML)
	c, err := m.client()
	if err != nil {
		return err
	}
	if err := c.DialAndSendWithContext(ctx, mm); err != nil {
		if m.password != "" && strings.Contains(err.Error(), m.password) {
			// No known server echoes it, but an error is logged.
			err = errors.New(strings.ReplaceAll(err.Error(), m.password, redacted))
		}
		return fmt.Errorf("mail via %s:%d: %w", m.cfg.Host, m.cfg.Port, err)
	}
	return nil
}
