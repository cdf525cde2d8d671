package session

// DiskSize returns the bytes of the store's files: Badger's LSM tree (keys
// and small values) and its value log, as Badger last measured them (it
// does once a minute, so a new store reads 0 at first). Cheap: for
// metrics.
func (s *Store) DiskSize() (lsm, vlog int64) { return s.db.Size() }
