package node

import (
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/session"
)

// newSessionView shows s as of now, given its user u (zero if unknown here)
// and the record of the site that minted it (zero if never revoked: see
// service.view). It also returns the session's state.
func newSessionView(s *session.Session, u *session.User, site session.Site, now time.Time) (client.SessionInfo, session.State) {
	v := client.SessionInfo{
		ID:        s.ID,
		Email:     s.Email,
		Site:      s.Site,
		IP:        s.IP,
		UserAgent: s.UserAgent,
		CreatedAt: s.Created.Time(),
		ExpiresAt: time.UnixMilli(s.ExpiresAt).UTC(),
		Synced:    !s.Local,
	}
	state := s.StateIn(*u, site, now)
	switch state {
	case session.StateActive:
		v.Active = true
	case session.StateEnded:
		v.EndedAt, v.EndReason = hlcTime(s.Ended), s.EndReason
	case session.StateRevoked:
		v.EndedAt, v.EndReason = hlcTime(u.RevokedBefore), session.EndLogoutEverywhere
		if s.Created > u.RevokedBefore { // revoked by the user's move alone
			v.EndedAt, v.EndReason = hlcTime(u.MovedTo.At), session.EndAdmin
		}
	case session.StateSiteRevoked:
		// While the site is revoked: ended at the revocation, or at its
		// creation if the site was revoked then already. Once un-revoked,
		// the record keeps only when that was (RevokedBefore): it ended by
		// then.
		v.EndedAt, v.EndReason = hlcTime(max(s.Created, site.Revoked.At)), session.EndSiteRevoked
		if !site.Revoked.V {
			v.EndedAt = hlcTime(site.RevokedBefore)
		}
	case session.StateExpired:
		v.EndedAt, v.EndReason = &v.ExpiresAt, session.EndExpired
	}
	return v, state
}

func newUserView(u *session.User) client.UserInfo {
	v := client.UserInfo{
		Email:       u.Email,
		Login:       u.Login.V,
		DisplayName: u.DisplayName.V,
		Verified:    u.Verified.V.OK,
		CreatedAt:   hlcTime(u.Created),
		MovedTo:     u.MovedTo.V,
	}
	if v.Verified {
		v.VerifiedVia = u.Verified.V.Method
		v.VerifiedAt = hlcTime(u.Verified.At)
	}
	v.RevokedBefore = hlcTime(u.RevokedBefore)
	return v
}

// hlcTime is h's wall time, or nil for the zero HLC ("never").
func hlcTime(h session.HLC) *time.Time {
	if h == 0 {
		return nil
	}
	t := h.Time()
	return &t
}

// userView is newUserView as the private API shows it to this site: with
// whether this site is bound to the address.
func (a *api) userView(u *session.User) client.UserInfo {
	v := newUserView(u)
	v.Bound = u.BoundTo(a.svc.Name)
	return v
}

// view is the session s of user u as of now, with the record of the site
// that minted it (session.Session.StateIn).
func (s *service) view(sess *session.Session, u *session.User, now time.Time) (client.SessionInfo, session.State) {
	return newSessionView(sess, u, s.Store.Site(sess.Site), now)
}
