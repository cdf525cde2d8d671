// Package gossip spreads session changes between ussync nodes over
// hashicorp/memberlist, and is the only package that imports it.
//
// Four mechanisms, each needed:
//
//  1. Eager push: Publish sends a local change at once, straight to every
//     live member, through one sender per peer. A sender takes everything
//     queued for its peer when it wakes, so changes batch by themselves under
//     load and go alone when idle. Small batches travel as one UDP packet
//     (SendBestEffort), larger ones over TCP (SendReliable).
//  2. Gossip: the same records enter memberlist's broadcast queue, and a node
//     that learns something new from a peer re-queues it, as Serf does with
//     user events, so a member that missed the push still hears it. The queue
//     is pruned at MaxQueueDepth; anti-entropy covers what pruning drops.
//  3. Anti-entropy: memberlist's push/pull carries a digest (one 64-bit hash
//     per bucket, 2 KiB in all) instead of the state. For the buckets that
//     differ each side sends the other its (key hash, record hash) pairs, 16
//     bytes a record, and each sends back exactly the records the other lacks
//     or holds in another state, over SendReliable in chunks of at most
//     MaxChunkBytes. In-sync nodes exchange only the digests; during a burst
//     of logins a round costs the pairs of the busy buckets, not their
//     records.
//  4. Reconnect: memberlist gives up on a member declared dead. A loop keeps
//     re-joining failed members, and the configured join addresses while the
//     node is alone, with exponential backoff, so partitions heal by
//     themselves.
//
// Every message is encrypted and authenticated by memberlist's AES-GCM
// keyring, with keys the caller derives from the cluster secret; a node with
// another secret can neither join nor inject anything. Delegate callbacks
// never block and never keep memberlist's buffers: they copy and hand off to
// bounded channels, and a full channel drops (and counts) rather than stall
// memberlist.
package gossip
