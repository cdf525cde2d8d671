package node_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

func TestClient_Status(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/ok/v1/status":
			w.Write([]byte(`{"node":"n1","members":[{"name":"n1","state":"alive"}],"future_field":1}`))
		case "/forbidden/v1/status":
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":"unauthorized","message":"wrong token"}}`))
		case "/proxy/v1/status":
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte(`<html>bad gateway</html>`))
		default:
			w.Write([]byte(`not json`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	t.Run("ok", func(t *testing.T) {
		st, err := node.NewClient(srv.URL+"/ok/", "tok").Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Node != "n1" || len(st.Members) != 1 || gotAuth != "Bearer tok" {
			t.Errorf("got %+v, auth %q", st, gotAuth)
		}
	})

	t.Run("scheme optional", func(t *testing.T) {
		if _, err := node.NewClient(strings.TrimPrefix(srv.URL, "http://")+"/ok", "tok").Status(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("api error", func(t *testing.T) {
		_, err := node.NewClient(srv.URL+"/forbidden", "tok").Status(ctx)
		var ae *node.APIError
		if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != "unauthorized" || ae.Message != "wrong token" {
			t.Fatalf("err = %#v", err)
		}
		if !strings.Contains(err.Error(), "wrong token") {
			t.Errorf("err = %q", err)
		}
	})

	t.Run("non-JSON error body", func(t *testing.T) {
		_, err := node.NewClient(srv.URL+"/proxy", "tok").Status(ctx)
		var ae *node.APIError
		if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.Message != "Bad Gateway" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("not a node", func(t *testing.T) {
		_, err := node.NewClient(srv.URL+"/other", "tok").Status(ctx)
		if err == nil || !strings.Contains(err.Error(), "not the expected JSON") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = node.NewClient("http://"+addr, "secret-token").Status(ctx)
		if !errors.Is(err, node.ErrUnreachable) {
			t.Fatalf("err = %v, want ErrUnreachable", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "cannot be reached at http://"+addr) || !strings.Contains(msg, "connection refused") || strings.Contains(msg, "secret-token") {
			t.Errorf("err = %q", msg)
		}
	})
}
