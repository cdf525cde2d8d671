package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/demo/site"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node"
)

// Options configure a demo. The zero value is a chain-mode demo on free ports.
type Options struct {
	// Mode is the hand-off mode every site uses: client.ModeChain (default),
	// client.ModeIframe or client.ModeLazy.
	Mode string
	// PortBase is the port of the first site; the second and third sites
	// listen on the next two ports. 0 lets the kernel pick three free ports
	// (tests). The sites listen on 127.0.0.1 only.
	PortBase int
	// Hosts are the host names of the three sites, default site-a.localhost,
	// site-b.localhost and site-c.localhost: browsers resolve *.localhost to
	// the loopback themselves, treat each as its own site (so the hand-off
	// really crosses sites) and as a secure context (so the SameSite=None;
	// Secure cookies of iframe mode work over plain http).
	Hosts []string
	// HopInterval is sync.hop_interval of the nodes (lazy mode: how long a
	// browser that came back from the other sites without a session is not
	// sent round again). Default one minute, shorter than a production
	// node's, so that trying things out in lazy mode is not confusing.
	HopInterval time.Duration
	// SiteHealthInterval is site.health_interval of the nodes: how often
	// each checks that its site answers. Default one second, so that a
	// stopped site is left out of hand-offs at once; a test of a site that
	// dies before its node notices sets it long.
	SiteHealthInterval time.Duration
	// Version is the software version the nodes advertise.
	Version string
	// Logger receives the nodes' and the sites' logs. Nil discards them.
	Logger *slog.Logger
}

// Users are the demo users, registered (verified) on every site at start.
var Users = []site.User{
	{Email: "ada@example.com", DisplayName: "Ada Lovelace"},
	{Email: "grace@example.com", DisplayName: "Grace Hopper"},
	{Email: "alan@example.com", DisplayName: "Alan Turing"},
}

// siteSpecs are what makes each demo site itself (their URLs are added
// once their ports are bound).
var siteSpecs = []site.Spec{
	{Name: "shop", Title: "Shop", Brand: "Northwind Shop", Tagline: "tea, tools and small useful things", Mark: "N"},
	{Name: "blog", Title: "Blog", Brand: "Field Notes", Tagline: "a blog about maps, trains and weather", Mark: "F"},
	{Name: "forum", Title: "Forum", Brand: "The Commons", Tagline: "a forum for people who fix things", Mark: "C"},
}

// defaultHosts are the sites' host names unless Options.Hosts says otherwise.
var defaultHosts = []string{"site-a.localhost", "site-b.localhost", "site-c.localhost"}

// Timeouts of Run and Close.
const (
	startTimeout = 20 * time.Second // membership and the demo users reach every node
	closeTimeout = 10 * time.Second // sites drain, nodes leave and close their stores
)

// Demo is a running demo: three nodes and their sites. Close stops it.
type Demo struct {
	mode  string
	dir   string // data dirs of the nodes, removed by Close
	log   *slog.Logger
	nodes []*node.Node
	sites []*site.Site
	// stopped are the sites StopSite stopped (Close skips them).
	stoppedMu sync.Mutex
	stopped   map[int]bool

	closeOnce sync.Once
	closeErr  error
}

// Run starts a demo: it binds the three sites' ports, starts three nodes
// (profile local, loopback, ports picked by the kernel, temporary data dirs,
// one generated secret and API token), starts the sites, waits until every
// node sees the three members alive and registers the demo users. ctx bounds
// the start only; the demo runs until Close.
func Run(ctx context.Context, opts Options) (*Demo, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &Demo{mode: opts.Mode, log: opts.Logger}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	if d.dir, err = os.MkdirTemp("", "ussync-demo-"); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	secret, err := crypto.GenerateSecret()
	if err != nil {
		return nil, err
	}
	token, err := crypto.NewAPIToken()
	if err != nil {
		return nil, err
	}
	// The sites' ports come first: each node must know its site's URL.
	family, listeners, err := listen(opts)
	if err != nil {
		return nil, err
	}
	if err := d.startNodes(ctx, opts, family, secret.Encode(), token); err != nil {
		closeAll(listeners)
		return nil, err
	}
	for i, n := range d.nodes {
		s := site.New(site.Config{
			Index:       i,
			Family:      family,
			Mode:        opts.Mode,
			API:         client.New(n.APIAddr(), token),
			Public:      n.PublicAddr(),
			HopInterval: opts.HopInterval,
			Users:       Users,
			Log:         opts.Logger.With("site", family[i].Name),
		})
		s.Serve(listeners[i])
		d.sites = append(d.sites, s)
	}

	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := d.waitMembers(startCtx); err != nil {
		return nil, err
	}
	if err := d.registerUsers(startCtx); err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

// withDefaults checks o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Mode == "" {
		o.Mode = client.ModeChain
	}
	if !slices.Contains([]string{client.ModeChain, client.ModeIframe, client.ModeLazy}, o.Mode) {
		return o, fmt.Errorf("mode %q is not one of chain, iframe, lazy", o.Mode)
	}
	if o.Hosts == nil {
		o.Hosts = defaultHosts
	}
	if len(o.Hosts) != len(siteSpecs) {
		return o, fmt.Errorf("hosts: %d given, the demo has %d sites", len(o.Hosts), len(siteSpecs))
	}
	if o.PortBase < 0 || o.PortBase > 65535-len(siteSpecs) {
		return o, fmt.Errorf("port base %d is not a port from 1 to %d (or 0 for free ports)", o.PortBase, 65535-len(siteSpecs))
	}
	if o.HopInterval <= 0 {
		o.HopInterval = time.Minute
	}
	if o.SiteHealthInterval <= 0 {
		o.SiteHealthInterval = time.Second
	}
	if o.Version == "" {
		o.Version = "demo"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// listen binds the sites' ports and returns the sites with their URLs.
func listen(opts Options) ([]site.Spec, []net.Listener, error) {
	family := slices.Clone(siteSpecs)
	listeners := make([]net.Listener, len(siteSpecs))
	for i, spec := range siteSpecs {
		port := 0
		if opts.PortBase != 0 {
			port = opts.PortBase + i
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			closeAll(listeners[:i])
			return nil, nil, fmt.Errorf("listen for the %s site: %w", spec.Title, err)
		}
		listeners[i] = ln
		family[i].URL = fmt.Sprintf("http://%s:%d/", opts.Hosts[i], ln.Addr().(*net.TCPAddr).Port)
	}
	return family, listeners, nil
}

// startNodes starts one node per site of family, each joining the first,
// all with one secret and one API token.
func (d *Demo) startNodes(ctx context.Context, opts Options, family []site.Spec, secret, token string) error {
	for i, spec := range family {
		cfg := node.DefaultConfig()
		cfg.Node.Name = spec.Name
		cfg.Node.DataDir = filepath.Join(d.dir, spec.Name)
		cfg.Node.Profile = string(gossip.ProfileLocal)
		cfg.Site.URL = spec.URL
		cfg.Gossip.Bind = "127.0.0.1:0"
		cfg.Gossip.Secrets = []string{secret}
		if i > 0 {
			cfg.Gossip.Join = []string{d.nodes[0].GossipAddr()}
		}
		cfg.API.Listen = "127.0.0.1:0"
		cfg.API.Token = token
		cfg.Public.Listen = "127.0.0.1:0"
		// The site's reverse proxy runs on the loopback: believe its
		// X-Forwarded-For, so that tickets and sessions see the browser's IP.
		cfg.Public.TrustedProxies = []string{"127.0.0.1/32"}
		cfg.Sync.Modes = []string{opts.Mode}
		cfg.Sync.HopInterval = node.Duration(opts.HopInterval)
		// Each node checks its own site every second (through the site's
		// proxy): a stopped site is left out of hand-offs at once.
		cfg.Site.HealthInterval = node.Duration(opts.SiteHealthInterval)
		cfg.Version = opts.Version
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("config of node %s: %w", spec.Name, err)
		}
		n, err := node.New(cfg, opts.Logger)
		if err != nil {
			return fmt.Errorf("build node %s: %w", spec.Name, err)
		}
		d.nodes = append(d.nodes, n)
		if err := n.Start(ctx); err != nil {
			return fmt.Errorf("start node %s: %w", spec.Name, err)
		}
	}
	return nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			ln.Close()
		}
	}
}

// poll calls cond every 20 ms until it returns nil or ctx ends; the error is
// then cond's last one, naming what was awaited.
func poll(ctx context.Context, what string, cond func() error) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (%v)", what, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// waitMembers waits until every node lists every site as an alive member (a
// login answers sync URLs for the live members only) and takes the
// hand-off tickets of a login made now.
func (d *Demo) waitMembers(ctx context.Context) error {
	return poll(ctx, "the three nodes to see each other", func() error {
		for _, s := range d.sites {
			st, err := s.API.Status(ctx)
			if err != nil {
				return err
			}
			alive := 0
			for _, m := range st.Members {
				if m.State == client.MemberAlive && m.SiteURL != "" && m.Handoff {
					alive++
				}
			}
			if alive != len(d.sites) {
				return fmt.Errorf("%s sees %d of %d members alive, their sites answering", s.Name, alive, len(d.sites))
			}
			// The demo's data dirs are new: until a node's first
			// anti-entropy round shows its name new to the cluster, it
			// refuses the hand-off tickets issued near its start (node's
			// freshGuard), and a login made at once lost its hand-off to
			// that site ("ticket_before_start"; seen in CI).
			if h := st.Health; h != nil && h.TicketsRefusedUntil != nil {
				return fmt.Errorf("%s refuses tickets issued before %s (its store is new and no round has shown its name new yet)", s.Name, h.TicketsRefusedUntil.Format(time.RFC3339))
			}
		}
		return nil
	})
}

// registerUsers registers the demo users on the first site, as a
// registration that proved the mailbox (verified_via: registration), waits
// until gossip brought them to the others, then has each other site's
// administrator vouch for them (verified_via: admin, nothing else).
//
// Why: a login travels only from a site bound to the user's address
// (docs/security.md). The demo sends no mail, so no site can prove a
// mailbox by code; the demo users are fixtures its operator vouches for on
// every site, which binds each site (a login on any of them travels) and
// leaves the other sites without an account for them (an administrator's
// verify alone does not say the site's backend has the user), so the
// first hand-off to Blog or Forum still shows the "added you as a
// subscriber" of an unknown user. The register form on the page proves
// nothing and stays unverified: its logins stay on their site.
func (d *Demo) registerUsers(ctx context.Context) error {
	first := d.sites[0]
	for _, u := range Users {
		login, via := site.LoginName(u.Email), client.VerifiedRegistration
		up := client.UserUpdate{Login: &login, DisplayName: &u.DisplayName, VerifiedVia: &via}
		if _, err := first.API.PutUser(ctx, u.Email, up); err != nil {
			return fmt.Errorf("register %s: %w", u.Email, err)
		}
	}
	if err := poll(ctx, "the demo users to reach every node", func() error {
		for _, s := range d.sites {
			for _, u := range Users {
				if _, err := s.API.User(ctx, u.Email); err != nil {
					return fmt.Errorf("%s: user %s: %w", s.Name, u.Email, err)
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, s := range d.sites[1:] {
		for _, u := range Users {
			via := client.VerifiedAdmin
			if _, err := s.API.PutUser(ctx, u.Email, client.UserUpdate{VerifiedVia: &via}); err != nil {
				return fmt.Errorf("vouch for %s on %s: %w", u.Email, s.Name, err)
			}
		}
	}
	return nil
}

// Mode is the demo's hand-off mode.
func (d *Demo) Mode() string { return d.mode }

// Sites returns the sites' base URLs (ending in "/"): Shop, Blog, Forum.
func (d *Demo) Sites() []string {
	out := make([]string, len(d.sites))
	for i, s := range d.sites {
		out[i] = s.URL
	}
	return out
}

// StopSite stops the web server of site i (0, 1 or 2), as a crashed or
// stopped web server would be, and leaves its node running: the node's
// check of its site fails, and the other sites leave it out of their
// hand-offs (docs/operations.md, "A site that does not answer").
func (d *Demo) StopSite(ctx context.Context, i int) error {
	if i < 0 || i >= len(d.sites) {
		return fmt.Errorf("no site %d", i)
	}
	d.stoppedMu.Lock()
	if d.stopped == nil {
		d.stopped = map[int]bool{}
	}
	d.stopped[i] = true
	d.stoppedMu.Unlock()
	return d.sites[i].Shutdown(ctx)
}

func (d *Demo) isStopped(i int) bool {
	d.stoppedMu.Lock()
	defer d.stoppedMu.Unlock()
	return d.stopped[i]
}

// Status is node i's status (its view of the cluster and of the sites).
func (d *Demo) Status(ctx context.Context, i int) (client.Status, error) {
	return d.sites[i].API.Status(ctx)
}

// Close stops the sites (letting requests in flight finish), then the nodes
// (each leaves the cluster and closes its store), and removes the data
// dirs. It is idempotent.
func (d *Demo) Close() error {
	d.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		var errs []error
		for i, s := range d.sites {
			if d.isStopped(i) {
				continue
			}
			if err := s.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop site %s: %w", s.Name, err))
			}
		}
		for _, n := range d.nodes {
			if err := n.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop node %s: %w", n.Name(), err))
			}
		}
		if d.dir != "" {
			if err := os.RemoveAll(d.dir); err != nil {
				errs = append(errs, fmt.Errorf("remove data dir: %w", err))
			}
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}
