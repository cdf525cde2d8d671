package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// maxBodyBytes bounds a private API request body.
const maxBodyBytes = 64 << 10

// decodeBody decodes the request's JSON body into dst strictly: a JSON
// object, no unknown field, nothing after it, at most maxBodyBytes, with
// Content-Type application/json. An empty body is an error unless optional
// (dst is then left as it is).
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	if r.ContentLength > 0 && !jsonContentType(r) {
		return unsupportedMedia(r)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return refuse(errBodyTooLarge, "the body is larger than %d bytes", maxBodyBytes)
		}
		return refuse(errInvalidJSON, "read the body: %v", err)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		if optional {
			return nil
		}
		return refuse(errInvalidJSON, "the body is empty: send a JSON object")
	}
	if !jsonContentType(r) {
		return unsupportedMedia(r)
	}
	if trimmed[0] != '{' {
		return refuse(errInvalidJSON, "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return refuse(errInvalidJSON, "unexpected data after the JSON object (at byte %d)", dec.InputOffset())
	}
	return nil
}

func unsupportedMedia(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return refuse(errUnsupportedMedia, "a body needs Content-Type: application/json")
	}
	return refuse(errUnsupportedMedia, "Content-Type %q is not application/json", ct)
}

// jsonContentType reports whether r's Content-Type is application/json
// (parameters such as charset allowed).
func jsonContentType(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// jsonError explains a decoding error, naming the field at fault.
func jsonError(err error) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return refuse(errInvalidJSON, "invalid JSON at byte %d: %v", se.Offset, se)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return refuse(errInvalidJSON, "the body must be a JSON object")
		}
		return refuse(errInvalidField, "field %q must be %s, not %s", te.Field, jsonType(te.Type.String()), te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return refuse(errInvalidJSON, "the JSON body is truncated")
	}
	// encoding/json has no typed error for an unknown field.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return refuse(errUnknownField, "unknown field %s", name)
	}
	return refuse(errInvalidJSON, "invalid JSON: %v", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonType(goType string) string {
	switch strings.TrimPrefix(goType, "*") {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	}
	return "a " + goType
}

// Limits on what a site may store about a user or a session. Records travel
// in gossip messages: they are kept small.
const (
	maxNameBytes      = 256 // login and display_name
	maxUserAgentBytes = 512
)

// pathEmail is the normalized {email} of the request path.
func pathEmail(r *http.Request) (string, error) {
	e, err := session.NormalizeEmail(r.PathValue("email"))
	if err != nil {
		return "", refuse(session.ErrInvalidEmail, "the e-mail in the path is not a valid address (%v)", err)
	}
	return e, nil
}

// pathID is the {id} of the request path, checked.
func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !crypto.ValidSessionID(id) {
		return "", refuse(errInvalidID, "a session id is 64 lower-case hex characters (the SHA-256 of the token)")
	}
	return id, nil
}

func checkName(field string, v *string) error {
	if v != nil && len(*v) > maxNameBytes {
		return refuse(errInvalidField, "field %q is longer than %d bytes", field, maxNameBytes)
	}
	return nil
}

// queryOnly refuses query parameters other than names, and any given twice:
// a mistyped parameter is an error, not a silently wider listing.
func queryOnly(r *http.Request, names ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, refuse(errBadRequest, "the query string does not parse")
	}
	for k, v := range q {
		known := false
		for _, n := range names {
			known = known || k == n
		}
		if !known {
			return nil, refuse(errInvalidField, "unknown query parameter %q (this call takes %s)", k, strings.Join(names, ", "))
		}
		if len(v) > 1 {
			return nil, refuse(errInvalidField, "query parameter %q is given %d times", k, len(v))
		}
	}
	return q, nil
}

// queryLimit parses the limit parameter: 1 to session.MaxListLimit, default
// session.DefaultListLimit.
func queryLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return session.DefaultListLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > session.MaxListLimit {
		return 0, refuse(errInvalidField, "query parameter \"limit\" must be a number from 1 to %d, not %q", session.MaxListLimit, s)
	}
	return n, nil
}

// queryParams parses the query strictly and returns the named parameters:
// a query that does not parse, or a named parameter given more than once, is
// a 400. Other parameters are ignored.
func queryParams(r *http.Request, names ...string) (map[string]string, error) {
	return queryOf(r.URL.RawQuery, names...)
}

// queryOf is queryParams over a raw query string.
func queryOf(raw string, names ...string) (map[string]string, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, refuse(errBadRequest, "the query string does not parse")
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		switch v := vals[n]; len(v) {
		case 0:
		case 1:
			out[n] = v[0]
		default:
			return nil, refuse(errBadRequest, "query parameter %q is given %d times", n, len(v))
		}
	}
	return out, nil
}
