package mariadb

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// GTID is one MariaDB global transaction ID, domain-server-sequence.
type GTID struct {
	Domain, Server uint32
	Seq            uint64
}

func (g GTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq) }

// ParseGTIDList parses a GTID list as the server prints it ("0-1-10,1-2-5"; "" is the empty list).
func ParseGTIDList(s string) ([]GTID, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []GTID
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("GTID %q: want domain-server-sequence", part)
		}
		d, err1 := strconv.ParseUint(f[0], 10, 32)
		sv, err2 := strconv.ParseUint(f[1], 10, 32)
		seq, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("GTID %q: want three unsigned numbers", part)
		}
		out = append(out, GTID{Domain: uint32(d), Server: uint32(sv), Seq: seq})
	}
	return out, nil
}

// gtidContained reports whether every transaction a server has up to pos (its gtid_current_pos: the last
// GTID of each replication domain) is in the history described by state, a gtid_binlog_state (the last
// GTID of each domain and server that ever wrote in it): whether the server holds nothing but a prefix of
// that history. In a domain, sequence numbers grow along the history whichever server writes (gtid_strict_mode), so
// a GTID is in the history when the state knows its domain and server with a sequence at least as high.
// missing lists those that are not (a diverged server, or data from elsewhere).
func gtidContained(pos, state []GTID) (ok bool, missing []GTID) {
	for _, g := range pos {
		in := slices.ContainsFunc(state, func(s GTID) bool {
			return s.Domain == g.Domain && s.Server == g.Server && s.Seq >= g.Seq
		})
		if !in {
			missing = append(missing, g)
		}
	}
	return len(missing) == 0, missing
}

// gtidReached reports whether a server at pos (gtid_current_pos or gtid_slave_pos) has applied everything
// up to want (a position of the same history): in every domain of want, pos is at least as far.
func gtidReached(pos, want []GTID) bool {
	for _, w := range want {
		if !slices.ContainsFunc(pos, func(p GTID) bool { return p.Domain == w.Domain && p.Seq >= w.Seq }) {
			return false
		}
	}
	return true
}

func formatGTIDs(l []GTID) string {
	s := make([]string, len(l))
	for i, g := range l {
		s[i] = g.String()
	}
	return strings.Join(s, ",")
}
