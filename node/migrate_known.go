package node

import (
	"errors"
	"strings"
	"time"

	"github.com/ussync/ussync/session"
)

// Node-local keys of an earlier version, which kept the users a site knows
// in its own store (lost with its data dir): known/<email> ("" once its
// backend had the user, "new" while it had not) and new-user/<session id>.
// What a site knows now travels in the user's record (User.MarkKnown).
const (
	legacyKnown   = "known/"
	legacyNewUser = "new-user/"
)

// migrateKnown turns the known-user marks of an earlier version into
// MarkKnown on the users' records (published like any change) and removes
// them, with the new-user flags. A user marked "new" (its backend had not
// acknowledged it) is left unknown: the site is told again. It runs once
// per start, and finds nothing after the first.
func (s *service) migrateKnown() error {
	type mark struct {
		email string
		known bool
	}
	var marks []mark
	var flags []string
	err := s.Store.LocalScan(legacyKnown, func(key string, v []byte, _ time.Time) error {
		marks = append(marks, mark{strings.TrimPrefix(key, legacyKnown), len(v) == 0})
		return nil
	})
	if err == nil {
		err = s.Store.LocalScan(legacyNewUser, func(key string, _ []byte, _ time.Time) error {
			flags = append(flags, key)
			return nil
		})
	}
	if err != nil {
		return err
	}
	for _, m := range marks {
		if m.known {
			u, found, err := s.user(m.email)
			if err != nil {
				return err
			}
			if found && !u.KnownTo(s.Name) && u.MarkKnown(s.Name, s.Store.Clock().Now()) {
				if _, err := s.applyUser(u); err != nil && !errors.Is(err, session.ErrClosed) {
					return err
				}
			}
		}
		if err := s.Store.LocalDelete(legacyKnown + m.email); err != nil {
			return err
		}
	}
	for _, k := range flags {
		if err := s.Store.LocalDelete(k); err != nil {
			return err
		}
	}
	if len(marks) > 0 {
		s.Log.Info("moved the users this site knows into their records", "users", len(marks))
	}
	return nil
}
