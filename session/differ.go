package session

import (
	"fmt"
	"strings"
)

// Differ says how stores do not hold the same replicated records yet, or ""
// once they do: the one meaning of "converged" that cluster tests and the
// bench share. It compares the digests first (cheap), then, once those
// agree, every replicated record of each store (RecordHashes: key and
// stored encoding) against the first store's, so that a digest blind to
// some records cannot pass for convergence. names[i] names stores[i] in the
// answer.
func Differ(names []string, stores []*Store) string {
	d := stores[0].Digest()
	for i, s := range stores[1:] {
		if s.Digest() != d {
			return fmt.Sprintf("the digests of %s and %s differ", names[0], names[i+1])
		}
	}
	want, err := stores[0].RecordHashes()
	if err != nil {
		return err.Error()
	}
	for i, s := range stores[1:] {
		got, err := s.RecordHashes()
		if err != nil {
			return err.Error()
		}
		name := names[i+1]
		for k, h := range want {
			if g, ok := got[k]; !ok {
				return fmt.Sprintf("%s lacks %s", name, k)
			} else if g != h {
				return fmt.Sprintf("%s holds %s in another state than %s", name, k, names[0])
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				return fmt.Sprintf("%s holds %s, which %s lacks", name, k, names[0])
			}
		}
	}
	return ""
}

// Explain says in detail why stores have not converged, for a test or a
// bench that gave up waiting (it reads every record of every store, once):
// for each store whose digest is not the sum of its records' hashes, the
// first bucket or leaf that drifted (VerifyDigest; a bug in keeping the
// digest: anti-entropy pulls it for ever and finds nothing to carry); the records that
// differ from the first store's, with both encodings (up to max of them);
// and the records each store refused since it opened. "" when there is
// nothing to say.
func Explain(names []string, stores []*Store, max int) string {
	var b strings.Builder
	all := make([]map[string]BucketEntry, len(stores))
	for i, s := range stores {
		all[i] = map[string]BucketEntry{}
		for bk := 0; bk < Buckets; bk++ {
			entries, err := s.BucketEntries(uint8(bk))
			if err != nil {
				fmt.Fprintf(&b, "\n%s: %v", names[i], err)
				break
			}
			for _, e := range entries {
				all[i][e.Key] = e
			}
		}
		if err := s.VerifyDigest(); err != nil {
			fmt.Fprintf(&b, "\n%s: its digest is not its records' sum: %v", names[i], err)
		}
		for reason, n := range s.Refused() {
			if n > 0 {
				fmt.Fprintf(&b, "\n%s: refused %d records (%s)", names[i], n, reason)
			}
		}
	}
	shown := 0
	show := func(format string, args ...any) {
		if shown < max {
			fmt.Fprintf(&b, "\n"+format, args...)
		}
		shown++
	}
	for i := 1; i < len(stores); i++ {
		for k, e := range all[0] {
			switch o, ok := all[i][k]; {
			case !ok:
				show("%s lacks %s (bucket %d), which %s holds as %s", names[i], k, BucketOf(k), names[0], e.Enc)
			case o.Hash != e.Hash:
				show("%s holds %s (bucket %d) as %s\n  where %s holds %s", names[i], k, BucketOf(k), o.Enc, names[0], e.Enc)
			}
		}
		for k, o := range all[i] {
			if _, ok := all[0][k]; !ok {
				show("%s holds %s (bucket %d) as %s, which %s lacks", names[i], k, BucketOf(k), o.Enc, names[0])
			}
		}
	}
	if shown > max {
		fmt.Fprintf(&b, "\n(and %d more differences)", shown-max)
	}
	return b.String()
}
