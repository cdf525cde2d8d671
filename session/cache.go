package session

import "sync"

// cache holds decoded records so that the session check, which every page
// view of every site makes, is answered from memory. It is write-through:
// the writer puts every record it commits, under the store's lock, so a
// cached record is never older than the disk. A reader that missed fills the
// cache only if no write happened since it started reading (generation), so
// a slow read cannot put back a record a write just replaced.
type cache struct {
	max int
	mu  sync.RWMutex
	m   map[string]entry
	gen uint64
}

// entry is a record with the exact bytes stored for it (the digest hashes
// those bytes, so a merge that finds the record here needs no disk read).
type entry struct {
	rec Record
	enc []byte
}

func newCache(max int) *cache {
	if max == 0 {
		max = 100_000
	}
	return &cache{max: max, m: map[string]entry{}}
}

func (c *cache) get(key string) (Record, bool) {
	e, ok := c.entry(key)
	return e.rec.clone(), ok
}

// entry returns the cached entry itself: the caller must not modify it.
func (c *cache) entry(key string) (entry, bool) {
	if c.max < 0 {
		return entry{}, false
	}
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	return e, ok
}

func (c *cache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put stores records just committed with their encodings.
func (c *cache) put(entries ...entry) {
	if c.max < 0 || len(entries) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, e := range entries {
		c.setLocked(e.rec.Key(), entry{rec: e.rec.clone(), enc: e.enc})
	}
}

// fill stores a record read from disk, unless a write came since gen.
func (c *cache) fill(key string, r Record, enc []byte, gen uint64) {
	if c.max < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.setLocked(key, entry{rec: r.clone(), enc: enc})
	}
}

func (c *cache) drop(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, k := range keys {
		delete(c.m, k)
	}
}

// setLocked stores r, first evicting an arbitrary eighth of the entries when
// full (Go's map order is random enough for a cache of this kind).
func (c *cache) setLocked(key string, e entry) {
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		evict := max(c.max/8, 1)
		for k := range c.m {
			delete(c.m, k)
			if evict--; evict == 0 {
				break
			}
		}
	}
	c.m[key] = e
}

// clone copies the record's parts, so callers never share the cache's
// (User.Sites excepted: it is never modified in place, see User).
func (r Record) clone() Record {
	if r.User != nil {
		u := *r.User
		r.User = &u
	}
	if r.Session != nil {
		s := *r.Session
		r.Session = &s
	}
	if r.Site != nil {
		x := *r.Site
		r.Site = &x
	}
	return r
}
