package session

import "fmt"

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
