package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

	keyring  *crypto.Keyring // keys.ring
	keys     *nodeKeyring
	store    *session.Store
	gossip   *gossip.Gossip
	metrics  *Metrics
	fresh    *freshness           // the node's freshness and its site's check (freshness.go)
	lag      prometheus.Histogram // ussync_propagation_lag_seconds
	verify   *verifier
	tokens   *apiTokens
	activity *activity
	svc      *service
	handoff  *handoff
	admin    *admin // nil when admin.enabled is off

	// LogLevel, when set before Start, is the level of the node's logger:
	// a reload sets it to log.level (the CLI's logger reads it).
	LogLevel *slog.LevelVar
	reloadMu sync.Mutex // serializes Reload
	current  Config     // the configuration as the last reload left it (under reloadMu)
	reloads  reloads
	apiLn    *limitListener
	pubLn    *limitListener
	apiSrv   *http.Server
	pubSrv   *http.Server

	started    bool        // Start succeeded
	modesFixed int         // data dir entries whose modes open() made private
	stopping   atomic.Bool // Close has begun: not ready
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
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
	if err := n.checkSecretFiles(); err != nil {
		return err
	}
	secrets, err := n.cfg.Secrets()
	if err != nil {
		return err
	}
	configRing, err := crypto.ParseKeyring(secrets)
	if err != nil {
		return fmt.Errorf("cluster secret: %w", err)
	}
	token, err := n.cfg.APIToken()
	if err != nil {
		return err
	}
	if err := n.open(); err != nil {
		return err
	}
	var ch keyringChange
	if n.keys, ch, err = openKeyring(n.cfg.Node.DataDir, configRing); err != nil {
		return err
	}
	n.keyring = n.keys.ring
	n.logKeyringChange(ch, "start")
	n.metrics = NewMetrics()
	n.lag = newLagHistogram()
	gc := n.gossipConfig()
	if n.gossip, err = gossip.New(gc, n.store); err != nil {
		return err
	}
	n.registerMetrics()
	n.startFreshness()
	n.tokens = newAPITokens(n.store, n.Now, n.log, crypto.HashToken(token))
	if err := n.tokens.load(); err != nil {
		return err
	}
	n.activity = newActivity(n.store, n.Now, n.log)
	private, pub, err := n.handlers()
	if err != nil {
		return err
	}
	if err := n.unrevokeSelf(); err != nil {
		return err
	}
	// The private listener answers only to its own names (DNS rebinding).
	private = newHostGuard(private, n.cfg.API.Listen, n.cfg.API.AllowedHosts, n.log)
	n.newServers(private, pub)
	loopCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.serve(n.apiSrv, n.apiLn)
	n.serve(n.pubSrv, n.pubLn)
	n.runLoops(loopCtx)
	n.join(gc.Join)
	n.started = true
	n.current = n.cfg
	if n.modesFixed > 0 {
		n.log.Info("data dir made private: directories 0700, files 0600", "dir", n.cfg.Node.DataDir, "changed", n.modesFixed)
	}
	n.log.Info("node started", "gossip", n.gossip.Addr(), "api", n.APIAddr(), "public", n.PublicAddr(), "site", n.cfg.Site.URL, "profile", n.cfg.Node.Profile)
	return nil
}

// newServers makes the two HTTP servers with their timeouts.
func (n *Node) newServers(private, pub http.Handler) {
	// ReadTimeout covers a request's body too (a client dribbling one is cut
	// off); WriteTimeout covers handling and answering. No answer streams.
	n.apiSrv = &http.Server{
		Handler:           private,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       time.Duration(n.cfg.API.ReadTimeout),
		WriteTimeout:      time.Duration(n.cfg.API.WriteTimeout),
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	n.pubSrv = &http.Server{
		Handler:           pub,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       time.Duration(n.cfg.Public.ReadTimeout),
		WriteTimeout:      time.Duration(n.cfg.Public.WriteTimeout),
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
}

// runLoops starts the node's loops, stopped when ctx ends: housekeeping,
// the freshness watch and the site's check.
func (n *Node) runLoops(ctx context.Context) {
	n.wg.Add(3)
	go n.housekeeping(ctx)
	go func() {
		defer n.wg.Done()
		n.fresh.watch(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.fresh.site.run(ctx)
	}()
}

// join contacts the join addresses at start (the reconnect loop keeps
// trying when none answers, and says why when they answer in another key).
func (n *Node) join(addrs []string) {
	if len(addrs) > 0 {
		if k, err := n.gossip.Join(addrs); err != nil {
			n.joinFailed(err)
		} else {
			n.log.Info("joined cluster", "contacted", k)
		}
	}
	n.fresh.update(time.Now()) // the join may have ended the isolation of the start
}

// open secures the data dir, opens the store and binds both HTTP
// listeners. A dev node's default site URL takes the public listener's real
// port.
func (n *Node) open() error {
	fixed, err := secureDataDir(n.cfg.Node.DataDir)
	if err != nil {
		return err
	}
	n.store, err = session.Open(session.Options{
		Dir:       n.cfg.Node.DataDir,
		Now:       n.Now,
		Retention: time.Duration(n.cfg.Session.HistoryRetention),
		Logger:    n.log,
		// The cluster's limits: every record from a peer or in a ticket is
		// checked against them.
		MaxOffset:     time.Duration(n.cfg.Cluster.MaxClockOffset),
		MaxSessionTTL: time.Duration(n.cfg.Session.MaxTTL),
	})
	if err != nil {
		return err
	}
	// Badger creates some of its files 0644 (0666 less the umask).
	k, err := secureDataDir(n.cfg.Node.DataDir)
	if err != nil {
		return err
	}
	n.modesFixed = fixed + k // logged once the node has started: a failed start says one thing
	ln, err := listenAPI(n.cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("listen for the private API: %w", err)
	}
	n.apiLn = newLimitListener(ln, n.cfg.API.MaxConnections, false)
	if ln, err = net.Listen("tcp", n.cfg.Public.Listen); err != nil {
		return fmt.Errorf("listen for the public endpoints: %w", err)
	}
	n.pubLn = newLimitListener(ln, n.cfg.Public.MaxConnections, n.cfg.Public.TLSCert != "")
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
	gc.Handoff = handoffVersion
	gc.Join = n.cfg.Gossip.Join
	gc.Logger = n.log
	gc.QueryHandler = n.keysQuery
	if n.TuneGossip != nil {
		n.TuneGossip(&gc)
	}
	// The node observes what peers' messages change (propagation lag), and
	// so does the Observer a tuning sets, if any.
	if tuned := gc.Observer; tuned != nil {
		gc.Observer = func(changed []session.Record) {
			n.observeApplied(changed)
			tuned(changed)
		}
	} else {
		gc.Observer = n.observeApplied
	}
	return gc
}

// handlers wires the service and the HTTP faces that call it: the private
// listener's (the API, and the admin page at /admin/ when admin.enabled)
// and the public one's.
func (n *Node) handlers() (private, public http.Handler, err error) {
	svc := newService(serviceConfig{
		Store:             n.store,
		Name:              n.cfg.Node.Name,
		TTL:               time.Duration(n.cfg.Session.TTL),
		MaxTTL:            time.Duration(n.cfg.Session.MaxTTL),
		RequireVerified:   n.cfg.Sync.RequireVerified,
		Publish:           n.gossip.Publish,
		PublishWithDeltas: n.gossip.PublishWithDeltas,
		Log:               n.log,
		Metrics:           n.metrics,
		Members:           n.gossip.Members,
		MembersVersion:    n.gossip.MembersVersion,
	})
	ho, err := newHandoff(handoffConfig{
		Keyring:       n.keyring,
		Service:       svc,
		Name:          n.cfg.Node.Name,
		SiteURL:       n.cfg.Site.URL,
		TicketTTL:     time.Duration(n.cfg.Sync.TicketTTL),
		MaxOffset:     time.Duration(n.cfg.Cluster.MaxClockOffset),
		BindIP:        n.cfg.Sync.BindIP,
		HopInterval:   time.Duration(n.cfg.Sync.HopInterval),
		Modes:         n.cfg.Sync.Modes,
		Members:       n.gossip.LiveMembers,
		Log:           n.log,
		Metrics:       n.metrics,
		OnUnknownUser: n.cfg.Site.OnUnknownUser,
		TicketGuard:   n.fresh.guard.check,
	})
	if err != nil {
		return nil, nil, err
	}
	n.svc, n.handoff = svc, ho
	if err := svc.migrateKnown(); err != nil {
		return nil, nil, fmt.Errorf("move the users this site knows into their records: %w", err)
	}
	if n.verify, err = n.newVerifier(); err != nil {
		return nil, nil, err
	}
	public, err = newPublic(publicDeps{Service: svc, Handoff: ho, Verify: n.verify, Log: n.log,
		TrustedProxies: n.cfg.Public.TrustedPrefixes()})
	if err != nil {
		return nil, nil, err
	}
	api := newAPI(apiDeps{Service: svc, Status: n.Status, NotReady: n.notReady, GossipHealth: n.gossipHealth, Backup: n.Backup, Keyring: n.askKeyring, Tokens: n.tokens, Activity: n.activity, Log: n.log, Metrics: n.metrics,
		Handoff: ho, Verify: n.verify, Fresh: n.fresh})
	if !n.cfg.Admin.Enabled {
		return api, public, nil
	}
	pw, err := n.cfg.AdminPassword()
	if err != nil {
		return nil, nil, err
	}
	cfg := adminConfig{Service: svc, Members: n.gossip.LiveMembers, Tokens: n.tokens, Activity: n.activity, Log: n.log,
		Password: pw, TTL: time.Duration(n.cfg.Admin.SessionTTL)}
	if n.cfg.SMTP.Enabled() {
		cfg.Resend = n.SendVerification
	}
	adm, err := newAdmin(cfg)
	if err != nil {
		return nil, nil, err
	}
	n.admin = adm
	mux := http.NewServeMux()
	mux.Handle(adminPrefix, adm)
	mux.Handle("/", api)
	return mux, public, nil
}

func (n *Node) serve(srv *http.Server, ln *limitListener) {
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

// scrubInterval is how often housekeeping scrubs one bucket of the digest
// (session.Store.Scrub): every bucket once in 64 minutes. A variable for
// the tests.
var scrubInterval = 15 * time.Second

// housekeeping sweeps history past retention, reclaims disk space, keeps
// the data dir private (files Badger created since are made 0600), logs
// the members whose clocks go beyond the max offset, and scrubs the
// digest, a bucket at a time.
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
	clocks := time.NewTicker(clockCheckInterval)
	defer clocks.Stop()
	scrub := time.NewTicker(scrubInterval)
	defer scrub.Stop()
	var bucket uint8 // the next bucket to scrub
	skewed := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-clocks.C:
			n.clockWatch(skewed)
		case <-scrub.C:
			// Store.Scrub logs and counts a corrected bucket itself.
			if _, err := n.store.Scrub(bucket); err != nil && !errors.Is(err, session.ErrClosed) {
				n.log.Error("scrub the digest", "bucket", bucket, "err", err)
			}
			bucket++
		case <-sweep.C:
			if k, err := n.store.Sweep(ctx); errors.Is(err, session.ErrStorageFull) {
				// The store logs a full disk itself, once a minute.
			} else if err != nil {
				n.log.Error("sweep history", "err", err)
			} else if k > 0 {
				n.log.Info("swept history past retention", "sessions", k)
			}
		case <-gc.C:
			n.store.GC()
			if _, err := secureDataDir(n.cfg.Node.DataDir); err != nil {
				n.log.Warn("keep the data dir private", "err", err)
			}
		}
	}
}

// Close leaves the cluster, lets in-flight requests finish (until ctx
// ends), stops gossip and closes the store. It is idempotent, and safe on a
// node whose Start failed half-way.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		n.stopping.Store(true)
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
		for _, ln := range []*limitListener{n.apiLn, n.pubLn} {
			if ln != nil {
				ln.Close() // a listener never served (Start failed) is closed here
			}
		}
		if n.handoff != nil {
			n.handoff.close()
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

// unrevokeSelf takes this node's own site's revocation back, under
// Config.UnrevokeSelf, before the node serves or joins: the record is
// gossiped once the node joins (anti-entropy carries it to every peer).
func (n *Node) unrevokeSelf() error {
	name := n.cfg.Node.Name
	if !n.cfg.UnrevokeSelf || !n.store.Site(name).IsRevoked() {
		return nil
	}
	x := session.UnrevokeSite(name, n.store.Clock().Now(), name)
	if _, err := n.store.Apply(session.Record{Site: &x}); err != nil {
		return fmt.Errorf("take this site's revocation back: %w", err)
	}
	n.gossip.Publish([]session.Record{{Site: &x}})
	n.log.Warn("this site's revocation taken back at start (--unrevoke-self): its new logins are active again once its peers hear it", "site", name)
	return nil
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

func addrOf(ln *limitListener) string {
	if ln == nil {
		return ""
	}
	if ln.Addr().Network() == "unix" {
		return unixPrefix + ln.Addr().String()
	}
	return ln.Addr().String()
}
