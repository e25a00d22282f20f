package playback

import "time"

// slots is an account's record in the sessions bucket.
type slots struct {
	Sessions map[string]Session `json:"sessions"`
}

func slotsKey(accountID string) string { return "acct." + accountID }

// pruneExpired removes expired sessions from s and returns them.
func pruneExpired(s *slots, now time.Time) []Session {
	if s.Sessions == nil {
		s.Sessions = map[string]Session{}
	}
	var out []Session
	for id, sess := range s.Sessions {
		if sess.expired(now) {
			out = append(out, sess)
			delete(s.Sessions, id)
		}
	}
	return out
}
