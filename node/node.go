package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/session"
)

// leaveTimeout bounds how long Close waits for the leave message to go out.
const leaveTimeout = 2 * time.Second

// Node is one running ussync node: its store, its gossip member and its two
// HTTP listeners. Build it with New, then Start; Close stops it. A Node is
// usable as a library and in tests without the CLI.
type Node struct {
	cfg Config
	log *slog.Logger

	// TuneGossip, when set before Start, adjusts the gossip config (tests
	// shrink timers and inject faults with it).
	TuneGossip func(*gossip.Config)
	// Now, when set before Start, is the wall clock of the store (tests).
	Now func() time.Time

	keyring *crypto.Keyring
	store   *session.Store
	gossip  *gossip.Gossip
	metrics *Metrics
	verify  *verifier
	apiLn   net.Listener
	pubLn   net.Listener
	apiSrv  *http.Server
	pubSrv  *http.Server

	started   bool // Start succeeded
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New builds a node from a validated Config. It opens nothing.
func New(cfg Config, logger *slog.Logger) (*Node, error) {
	if logger == nil {
		logger = slog.Default()
	}
	return &Node{cfg: cfg, log: logger.With("node", cfg.Node.Name)}, nil
}

// Start opens the store, binds both HTTP listeners and the gossip port,
// starts serving and joins the configured addresses. A port in use or an
// unusable data dir is an error, and what Start opened is released by Close.
// Failing to reach the join addresses is not: the node keeps retrying.
func (n *Node) Start(ctx context.Context) error {
	secrets, err := n.cfg.Secrets()
	if err != nil {
		return err
	}
	if n.keyring, err = crypto.ParseKeyring(secrets); err != nil {
		return fmt.Errorf("cluster secret: %w", err)
	}
	token, err := n.cfg.APIToken()
	if err != nil {
		return err
	}
	if err := n.open(); err != nil {
		return err
	}
	gc := n.gossipConfig()
	if n.gossip, err = gossip.New(gc, n.store); err != nil {
		return err
	}
	n.metrics = NewMetrics()
	n.registerMetrics()
	private, pub, err := n.handlers(crypto.HashToken(token))
	if err != nil {
		return err
	}
	n.apiSrv = &http.Server{
		Handler:           private,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	n.pubSrv = &http.Server{
		Handler:           pub,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.serve(n.apiSrv, n.apiLn)
	n.serve(n.pubSrv, n.pubLn)
	n.wg.Add(1)
	go n.housekeeping(loopCtx)

	if len(gc.Join) > 0 {
		if k, err := n.gossip.Join(gc.Join); err != nil {
			n.log.Warn("no join address answered; retrying in the background", "err", err)
		} else {
			n.log.Info("joined cluster", "contacted", k)
		}
	}
	n.started = true
	n.log.Info("node started", "gossip", n.gossip.Addr(), "api", n.APIAddr(), "public", n.PublicAddr(), "site", n.cfg.Site.URL, "profile", n.cfg.Node.Profile)
	return nil
}

// open opens the store and binds both HTTP listeners. A dev node's default
// site URL takes the public listener's real port.
func (n *Node) open() error {
	if err := os.MkdirAll(n.cfg.Node.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	var err error
	n.store, err = session.Open(session.Options{
		Dir:       n.cfg.Node.DataDir,
		Now:       n.Now,
		Retention: time.Duration(n.cfg.Session.HistoryRetention),
		Logger:    n.log,
	})
	if err != nil {
		return err
	}
	if n.apiLn, err = listenAPI(n.cfg.API.Listen); err != nil {
		return fmt.Errorf("listen for the private API: %w", err)
	}
	if n.pubLn, err = net.Listen("tcp", n.cfg.Public.Listen); err != nil {
		return fmt.Errorf("listen for the public endpoints: %w", err)
	}
	if n.cfg.Dev && n.cfg.Site.URL == devSiteURL(n.cfg.Public.Listen) {
		n.cfg.Site.URL = "http://" + n.pubLn.Addr().String() + "/"
	}
	return nil
}

// gossipConfig translates the config into the gossip member's.
func (n *Node) gossipConfig() gossip.Config {
	_, gossipKeys := n.keyring.GossipKeys()
	gc := gossip.DefaultConfig(gossip.Profile(n.cfg.Node.Profile))
	gc.Name = n.cfg.Node.Name
	gc.BindAddr = n.cfg.Gossip.Bind
	gc.AdvertiseAddr = n.cfg.Gossip.Advertise
	gc.Keys = gossipKeys
	gc.SiteURL = n.cfg.Site.URL
	gc.Version = n.cfg.Version
	gc.Join = n.cfg.Gossip.Join
	gc.Logger = n.log
	if n.TuneGossip != nil {
		n.TuneGossip(&gc)
	}
	return gc
}

// handlers wires the service and the HTTP faces that call it: the private
// listener's (the API, and the admin page at /admin/ when admin.enabled)
// and the public one's.
func (n *Node) handlers(token crypto.TokenHash) (private, public http.Handler, err error) {
	svc := newService(serviceConfig{
		Store:           n.store,
		Name:            n.cfg.Node.Name,
		TTL:             time.Duration(n.cfg.Session.TTL),
		RequireVerified: n.cfg.Sync.RequireVerified,
		Publish:         n.gossip.Publish,
		Log:             n.log,
		Metrics:         n.metrics,
	})
	ho, err := newHandoff(handoffConfig{
		Keyring:       n.keyring,
		Service:       svc,
		Name:          n.cfg.Node.Name,
		SiteURL:       n.cfg.Site.URL,
		TicketTTL:     time.Duration(n.cfg.Sync.TicketTTL),
		BindIP:        n.cfg.Sync.BindIP,
		HopInterval:   time.Duration(n.cfg.Sync.HopInterval),
		Modes:         n.cfg.Sync.Modes,
		Members:       n.gossip.LiveMembers,
		Log:           n.log,
		Metrics:       n.metrics,
		OnUnknownUser: n.cfg.Site.OnUnknownUser,
	})
	if err != nil {
		return nil, nil, err
	}
	if n.verify, err = n.newVerifier(); err != nil {
		return nil, nil, err
	}
	public, err = newPublic(publicDeps{Service: svc, Handoff: ho, Verify: n.verify, Log: n.log,
		TrustedProxies: n.cfg.Public.TrustedPrefixes()})
	if err != nil {
		return nil, nil, err
	}
	api := newAPI(apiDeps{Service: svc, Status: n.Status, Token: token, Log: n.log, Metrics: n.metrics,
		Handoff: ho, Verify: n.verify})
	if !n.cfg.Admin.Enabled {
		return api, public, nil
	}
	pw, err := n.cfg.AdminPassword()
	if err != nil {
		return nil, nil, err
	}
	cfg := adminConfig{Service: svc, Members: n.gossip.LiveMembers, Token: token, Log: n.log,
		Password: pw, TTL: time.Duration(n.cfg.Admin.SessionTTL)}
	if n.cfg.SMTP.Enabled() {
		cfg.Resend = n.SendVerification
	}
	adm, err := newAdmin(cfg)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(adminPrefix, adm)
	mux.Handle("/", api)
	return mux, public, nil
}

func (n *Node) serve(srv *http.Server, ln net.Listener) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		var err error
		if srv == n.pubSrv && n.cfg.Public.TLSCert != "" {
			err = srv.ServeTLS(ln, n.cfg.Public.TLSCert, n.cfg.Public.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// housekeeping sweeps history past retention and reclaims disk space.
func (n *Node) housekeeping(ctx context.Context) {
	defer n.wg.Done()
	interval := time.Duration(n.cfg.Session.SweepInterval)
	if interval <= 0 {
		interval = time.Minute
	}
	sweep := time.NewTicker(interval)
	defer sweep.Stop()
	gc := time.NewTicker(time.Hour)
	defer gc.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			if k, err := n.store.Sweep(ctx); err != nil {
				n.log.Error("sweep history", "err", err)
			} else if k > 0 {
				n.log.Info("swept history past retention", "sessions", k)
			}
		case <-gc.C:
			n.store.GC()
		}
	}
}

// Close leaves the cluster, lets in-flight requests finish (until ctx
// ends), stops gossip and closes the store. It is idempotent, and safe on a
// node whose Start failed half-way.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.gossip != nil {
			if err := n.gossip.Leave(leaveTimeout); err != nil {
				n.log.Warn("leave cluster", "err", err)
			}
		}
		for _, srv := range []*http.Server{n.apiSrv, n.pubSrv} {
			if srv != nil {
				if err := srv.Shutdown(ctx); err != nil {
					errs = append(errs, fmt.Errorf("drain http: %w", err))
				}
			}
		}
		for _, ln := range []net.Listener{n.apiLn, n.pubLn} {
			if ln != nil {
				ln.Close() // a listener never served (Start failed) is closed here
			}
		}
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.gossip != nil {
			if err := n.gossip.Close(); err != nil {
				errs = append(errs, fmt.Errorf("stop gossip: %w", err))
			}
		}
		if n.store != nil {
			if err := n.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close store: %w", err))
			}
		}
		n.closeErr = errors.Join(errs...)
		if n.started {
			n.log.Info("node stopped") // a failed start says one thing: why
		}
	})
	return n.closeErr
}

// Kill stops the node without leaving the cluster or draining requests, as
// a crash would (its peers see it fail). For tests.
func (n *Node) Kill() {
	n.closeOnce.Do(func() {
		for _, srv := range []*http.Server{n.apiSrv, n.pubSrv} {
			if srv != nil {
				srv.Close()
			}
		}
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.gossip != nil {
			n.gossip.Close()
		}
		if n.store != nil {
			n.store.Close()
		}
	})
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Node.Name }

// SiteURL is the site URL the node advertises.
func (n *Node) SiteURL() string { return n.cfg.Site.URL }

// APIAddr is the address the private API listens on (after Start):
// host:port, or unix:/path for a Unix socket.
func (n *Node) APIAddr() string { return addrOf(n.apiLn) }

// PublicAddr is the address the public listener listens on (after Start).
func (n *Node) PublicAddr() string { return addrOf(n.pubLn) }

// GossipAddr is the host:port the gossip member advertises (after Start).
func (n *Node) GossipAddr() string {
	if n.gossip == nil {
		return ""
	}
	return n.gossip.Addr()
}

// Store is the node's replica (after Start).
func (n *Node) Store() *session.Store { return n.store }

// Gossip is the node's gossip member (after Start).
func (n *Node) Gossip() *gossip.Gossip { return n.gossip }

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	if ln.Addr().Network() == "unix" {
		return unixPrefix + ln.Addr().String()
	}
	return ln.Addr().String()
}
