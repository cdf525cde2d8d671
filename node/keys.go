package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/gossip"
)

// The keyring at run time, cluster-wide (Serf's `serf keys`, Consul's
// `consul keyring`): list, install, use, remove, each asked of every live
// member through a gossip query and answered by each (keysQuery), or of
// this node alone (local). Each member applies the change to its keyring,
// saves it in its data dir (keyring.go: a restart keeps it) and hands the
// new keys to memberlist at once. The operator rotates without a restart:
// install the new key everywhere, use it everywhere, remove the old one.
//
// A member that is down during a rotation comes back with the old keys:
// it can no longer read the others, nor they it. Its gossip health says
// key_mismatch and isolated, /readyz says not ready, and the others' `keys`
// answers list it as down. It is given the new key locally: `ussync keys
// install --local KEY` then `keys use --local`, on it (or its secret file
// and a reload), and it rejoins.

// keysQueryName is the gossip query of keyring operations.
const keysQueryName = "keys"

// ErrKeyPrimary means a removal named the node's primary key.
var ErrKeyPrimary = errors.New("the key is the primary")

// keysRequest is the query's payload.
type keysRequest struct {
	Op string `json:"op"` // client.KeysList, KeysInstall, KeysUse, KeysRemove
	// Key is the secret to install (base64). The query travels encrypted
	// with the cluster's key; it is never logged.
	Key string `json:"key,omitempty"`
	// Fingerprint is the key to use or remove.
	Fingerprint string `json:"fp,omitempty"`
	// Actor is who asked, on the node asked: a token's name.
	Actor string `json:"actor"`
}

// keysReply is a member's answer: its keys after the operation, primary
// first.
type keysReply struct {
	Keys []string `json:"keys"`
	// Held, for a removal, says whether the member held the key before:
	// removing a key a member does not hold changes nothing there and is
	// no error (a removal run again), but a removal no member held is
	// named as such (client.KeyringAnswer.NotHeld). Nil for the other
	// operations, and from a member of a version before the field.
	Held *bool `json:"held,omitempty"`
}

// keyringOp applies one operation to this node's keyring, saves it and
// hands the keys to gossip, and says what it held after. from and actor
// name who asked (for the log and the activity history).
func (n *Node) keyringOp(req keysRequest, from string) (keysReply, error) {
	var changed bool
	var err error
	switch req.Op {
	case client.KeysList:
	case client.KeysInstall:
		var s crypto.Secret
		if s, err = crypto.ParseSecret(req.Key); err != nil {
			return keysReply{}, err
		}
		req.Fingerprint = s.Fingerprint()
		changed, err = n.keys.install(s)
	case client.KeysUse:
		changed, err = n.keys.use(req.Fingerprint)
	case client.KeysRemove:
		changed, err = n.keys.remove(req.Fingerprint)
	default:
		return keysReply{}, fmt.Errorf("unknown keyring operation %q", req.Op)
	}
	if err != nil {
		return keysReply{}, err
	}
	if changed {
		if err := n.applyKeyring(); err != nil {
			return keysReply{}, err
		}
		actor := req.Actor
		if from != n.cfg.Node.Name {
			actor = from + " via " + req.Actor
		}
		n.log.Info("keyring changed", "op", req.Op, "key", req.Fingerprint, "asked_by", from, "actor", req.Actor, "keyring", n.keyring)
		n.activity.record(actor, "keys."+req.Op, req.Fingerprint)
	}
	rep := keysReply{Keys: fingerprints(n.keyring)}
	if req.Op == client.KeysRemove {
		rep.Held = &changed // remove changes the keyring exactly when it held the key
	}
	return rep, nil
}

// keysQuery answers a keyring query from a member (or this node).
func (n *Node) keysQuery(q gossip.Query) ([]byte, error) {
	if q.Name != keysQueryName {
		return nil, fmt.Errorf("unknown query %q", q.Name)
	}
	var req keysRequest
	if err := json.Unmarshal(q.Payload, &req); err != nil {
		return nil, fmt.Errorf("decode keyring query: %w", err)
	}
	rep, err := n.keyringOp(req, q.From)
	if err != nil {
		return nil, err
	}
	return json.Marshal(rep)
}

// keysTimeout is how long a keyring operation waits for the members: long
// enough for a TCP exchange with each under the node's profile.
func (n *Node) keysTimeout() time.Duration {
	switch n.cfg.Node.Profile {
	case string(gossip.ProfileLocal):
		return 10 * time.Second
	case string(gossip.ProfileLAN):
		return 20 * time.Second
	}
	return 45 * time.Second
}

// askKeyring asks op of every live member (or, with local, of this node
// alone) and sums their answers up. A removal of this node's primary is
// refused here, before any member is asked (ErrKeyPrimary). actor is the
// caller's token name.
func (n *Node) askKeyring(ctx context.Context, req keysRequest, local bool) (client.KeyringAnswer, error) {
	ans := client.KeyringAnswer{Op: req.Op, Fingerprint: req.Fingerprint, Local: local, Asked: []string{}, OK: []string{}, Keys: []client.KeyringKey{}}
	if req.Op == client.KeysInstall {
		s, err := crypto.ParseSecret(req.Key)
		if err != nil {
			return ans, refuse(errInvalidField, "field \"key\": %v (make one with `ussync keygen`)", err)
		}
		ans.Fingerprint = s.Fingerprint()
	}
	if req.Op == client.KeysRemove && len(n.keyring.Keys()) > 0 && n.keyring.Keys()[0].Fingerprint == req.Fingerprint {
		return ans, refuse(ErrKeyPrimary, "key %s is this node's primary: make another key primary everywhere first (ussync keys use), then remove it", req.Fingerprint)
	}
	replies := map[string]keysReply{}
	if local {
		ans.Asked = append(ans.Asked, n.cfg.Node.Name)
		rep, err := n.keyringOp(req, n.cfg.Node.Name)
		if err != nil {
			ans.Failed = map[string]string{n.cfg.Node.Name: err.Error()}
		} else {
			replies[n.cfg.Node.Name] = rep
			ans.OK = append(ans.OK, n.cfg.Node.Name)
			noteNotHeld(&ans, n.cfg.Node.Name, rep)
		}
	} else {
		payload, err := json.Marshal(req)
		if err != nil {
			return ans, err
		}
		qctx, cancel := context.WithTimeout(ctx, n.keysTimeout())
		defer cancel()
		res, err := n.gossip.Query(qctx, keysQueryName, payload)
		if err != nil {
			return ans, err
		}
		n.sumKeysQuery(&ans, res, replies)
	}
	ans.Keys = keyHolders(replies)
	ans.Complete = len(ans.Failed) == 0 && len(ans.NoAnswer) == 0 && len(ans.Down) == 0 && len(ans.Left) == 0 && len(ans.Unsupported) == 0
	return ans, nil
}

// sumKeysQuery fills ans from a query's result, and replies with each
// member's keys.
func (n *Node) sumKeysQuery(ans *client.KeyringAnswer, res gossip.QueryResult, replies map[string]keysReply) {
	ans.Asked = append(ans.Asked, res.Asked...)
	sort.Strings(ans.Asked)
	for name, a := range res.Answers {
		if a.Err != "" {
			if ans.Failed == nil {
				ans.Failed = map[string]string{}
			}
			ans.Failed[name] = a.Err
			continue
		}
		var rep keysReply
		if err := json.Unmarshal(a.Payload, &rep); err != nil {
			if ans.Failed == nil {
				ans.Failed = map[string]string{}
			}
			ans.Failed[name] = "an answer that does not decode: " + err.Error()
			continue
		}
		replies[name] = rep
		ans.OK = append(ans.OK, name)
		noteNotHeld(ans, name, rep)
	}
	sort.Strings(ans.OK)
	sort.Strings(ans.NotHeld)
	ans.NoAnswer = res.Missing()
	for name, e := range res.SendErrors {
		ans.NoAnswer = append(ans.NoAnswer, name+" (unreachable: "+e+")")
	}
	sort.Strings(ans.NoAnswer)
	for _, m := range res.Unsupported {
		ans.Unsupported = append(ans.Unsupported, fmt.Sprintf("%s (%s)", m.Name, m.Version))
	}
	sort.Strings(ans.Unsupported)
	ans.Down, ans.Left = notAsked(n.gossip.Members(), ans.Asked, res.Unsupported)
}

// noteNotHeld adds member name to ans.NotHeld when its reply to a removal
// says it did not hold the key.
func noteNotHeld(ans *client.KeyringAnswer, name string, rep keysReply) {
	if rep.Held != nil && !*rep.Held {
		ans.NotHeld = append(ans.NotHeld, name)
	}
}

// notAsked names the members a keyring query did not reach, from the
// member list read after it: down (dead, or alive now but not when the
// query went out) and left (a clean stop). A member that left comes back
// with the keys it had, exactly as one that failed: both are named, neither
// asked. One alive now but not asked came back, or was judged dead for a
// moment by a loaded peer, while the query went out: it did not get the
// call either, and is named down, never left out (the answer said
// complete while it lacked the new key). Members of a version without
// keyring calls are Unsupported's, not named here.
func notAsked(members []gossip.Member, asked []string, unsupported []gossip.Member) (down, left []string) {
	for _, m := range members {
		if slices.Contains(asked, m.Name) || slices.ContainsFunc(unsupported, func(u gossip.Member) bool { return u.Name == m.Name }) {
			continue
		}
		if m.State == "left" {
			left = append(left, m.Name)
		} else {
			down = append(down, m.Name)
		}
	}
	sort.Strings(down)
	sort.Strings(left)
	return down, left
}

// keyHolders lists every key the replies name, with who holds it, who
// uses it as primary and who lacks it; the most held first.
func keyHolders(replies map[string]keysReply) []client.KeyringKey {
	byFP := map[string]*client.KeyringKey{}
	var members []string
	for name, rep := range replies {
		members = append(members, name)
		for i, fp := range rep.Keys {
			k := byFP[fp]
			if k == nil {
				k = &client.KeyringKey{Fingerprint: fp}
				byFP[fp] = k
			}
			k.Members++
			if i == 0 {
				k.PrimaryOn = append(k.PrimaryOn, name)
			}
		}
	}
	sort.Strings(members)
	out := make([]client.KeyringKey, 0, len(byFP))
	for fp, k := range byFP {
		for _, name := range members {
			if !slices.Contains(replies[name].Keys, fp) {
				k.MissingOn = append(k.MissingOn, name)
			}
		}
		sort.Strings(k.PrimaryOn)
		out = append(out, *k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Members != out[j].Members {
			return out[i].Members > out[j].Members
		}
		return out[i].Fingerprint < out[j].Fingerprint
	})
	return out
}

// normalizeFingerprint reads a key's fingerprint as the CLI and API take
// it: 16 hex characters, any case, with or without "secret:".
func normalizeFingerprint(s string) (string, error) {
	fp := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "secret:")
	if len(fp) != 16 || strings.Trim(fp, "0123456789abcdef") != "" {
		return "", refuse(errInvalidField, "%q is not a key fingerprint (16 hex characters, as `ussync keys list` shows)", s)
	}
	return fp, nil
}
