package bench

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"runtime/pprof"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// CPU time per node of a cluster in one process: nodetest labels every
// goroutine a node starts with "node"=<name> (pprof.Do), so a CPU profile
// of the process says which node spent what. The profile is read here with
// protowire alone (profile.proto's few fields this needs), not a profile
// library.

// errProfiling means a CPU profile is already being written (--cpuprofile):
// the per-node figures cannot be taken in the same run.
var errProfiling = errors.New("a CPU profile is already running (--cpuprofile)")

// cpuProfile is a CPU profile being taken into memory.
type cpuProfile struct{ buf bytes.Buffer }

// startCPUProfile starts profiling the process into memory.
func startCPUProfile() (*cpuProfile, error) {
	p := &cpuProfile{}
	if err := pprof.StartCPUProfile(&p.buf); err != nil {
		return nil, errProfiling
	}
	return p, nil
}

// stop ends the profile and returns the CPU time of each value of the label
// key ("" for samples without it).
func (p *cpuProfile) stop(key string) (map[string]time.Duration, error) {
	pprof.StopCPUProfile()
	return cpuByLabel(p.buf.Bytes(), key)
}

// cpuByLabel sums a CPU profile's (gzipped profile.proto) samples by the
// value of the label key.
func cpuByLabel(gz []byte, key string) (map[string]time.Duration, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("read CPU profile: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("read CPU profile: %w", err)
	}
	p, err := parseProfile(raw)
	if err != nil {
		return nil, err
	}
	cpu := -1
	for i, t := range p.types {
		if p.str(t[0]) == "cpu" && p.str(t[1]) == "nanoseconds" {
			cpu = i
		}
	}
	if cpu < 0 {
		return nil, errors.New("read CPU profile: no cpu/nanoseconds values")
	}
	out := map[string]time.Duration{}
	for _, s := range p.samples {
		if cpu >= len(s.values) {
			continue
		}
		v := ""
		for _, l := range s.labels {
			if p.str(l.key) == key {
				v = p.str(l.str)
			}
		}
		out[v] += time.Duration(s.values[cpu])
	}
	return out, nil
}

// profile is the part of a profile.proto cpuByLabel reads.
type profile struct {
	strs    []string
	samples []profSample
	types   [][2]int64 // sample_type: (type, unit) string indexes
}

type profLabel struct{ key, str int64 }

type profSample struct {
	values []int64
	labels []profLabel
}

// str is the string table's entry i, or "".
func (p *profile) str(i int64) string {
	if i < 0 || int(i) >= len(p.strs) {
		return ""
	}
	return p.strs[i]
}

var errBadProfile = errors.New("read CPU profile: malformed")

// parseProfile reads the sample types, the samples and the string table
// of a profile.proto message.
func parseProfile(raw []byte) (*profile, error) {
	var p profile
	err := protoFields(raw, func(num protowire.Number, typ protowire.Type, _ uint64, sub []byte) error {
		switch num {
		case 1: // sample_type
			var vt [2]int64
			err := protoFields(sub, func(num protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
				if num == 1 || num == 2 {
					vt[num-1] = int64(v)
				}
				return nil
			})
			p.types = append(p.types, vt)
			return err
		case 2: // sample
			s, err := parseSample(sub)
			p.samples = append(p.samples, s)
			return err
		case 6: // string_table
			p.strs = append(p.strs, string(sub))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// parseSample reads a Sample message's values and labels.
func parseSample(b []byte) (profSample, error) {
	var s profSample
	err := protoFields(b, func(num protowire.Number, typ protowire.Type, v uint64, sub []byte) error {
		switch num {
		case 2:
			return protoInts(typ, v, sub, &s.values)
		case 3:
			var l profLabel
			err := protoFields(sub, func(num protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
				switch num {
				case 1:
					l.key = int64(v)
				case 2:
					l.str = int64(v)
				}
				return nil
			})
			s.labels = append(s.labels, l)
			return err
		}
		return nil
	})
	return s, err
}

// protoFields calls fn with each field of a message.
func protoFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, sub []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadProfile
		}
		b = b[n:]
		var (
			v   uint64
			sub []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			sub, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errBadProfile
		}
		b = b[n:]
		if err := fn(num, typ, v, sub); err != nil {
			return err
		}
	}
	return nil
}

// protoInts reads a repeated int64 field, packed or not.
func protoInts(typ protowire.Type, v uint64, sub []byte, into *[]int64) error {
	if typ == protowire.VarintType {
		*into = append(*into, int64(v))
		return nil
	}
	for len(sub) > 0 {
		x, n := protowire.ConsumeVarint(sub)
		if n < 0 {
			return errBadProfile
		}
		*into = append(*into, int64(x))
		sub = sub[n:]
	}
	return nil
}
