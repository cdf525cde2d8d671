package node

import (
	"context"
	"errors"
	"log/slog"
)

// Node is one running ussync node. (Stub: the lead is writing the real one.)
type Node struct {
	cfg Config
	log *slog.Logger
}

// New builds a node from a validated Config. It opens nothing.
func New(cfg Config, logger *slog.Logger) (*Node, error) {
	return &Node{cfg: cfg, log: logger}, nil
}

// Start opens the store, starts the gossip member and both HTTP listeners, and
// joins the configured addresses. A port in use or a bad data dir is an error.
func (n *Node) Start(ctx context.Context) error { return errors.New("node: not implemented yet") }

// Close leaves the cluster, drains in-flight HTTP requests and closes the store.
// It is idempotent.
func (n *Node) Close(ctx context.Context) error { return nil }

// APIAddr is the address the private API listens on (after Start).
func (n *Node) APIAddr() string { return "" }

// PublicAddr is the address the public listener listens on (after Start).
func (n *Node) PublicAddr() string { return "" }
