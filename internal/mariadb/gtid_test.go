package mariadb

import (
	"testing"
)

func mustGTIDs(t *testing.T, s string) []GTID {
	t.Helper()
	l, err := ParseGTIDList(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestParseGTIDList(t *testing.T) {
	l := mustGTIDs(t, "0-2886729738-15, 1-5-3")
	if len(l) != 2 || l[0] != (GTID{0, 2886729738, 15}) || l[1] != (GTID{1, 5, 3}) || formatGTIDs(l) != "0-2886729738-15,1-5-3" {
		t.Errorf("parsed %v", l)
	}
	if l := mustGTIDs(t, ""); l != nil {
		t.Errorf("empty list: %v", l)
	}
	for _, bad := range []string{"0-1", "a-b-c", "0-1-2-3", "0-1--2", "0-4294967296-1"} {
		if _, err := ParseGTIDList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestGTIDContained(t *testing.T) {
	// The primary's binlog state after two primaries wrote in domain 0 (a switchover): server 10 up to 40,
	// then server 11 up to 52.
	state := mustGTIDs(t, "0-10-40,0-11-52")
	for _, tc := range []struct {
		pos  string
		want bool
	}{
		{"", true},
		{"0-10-12", true},  // a copy from before the switchover
		{"0-11-52", true},  // up to date
		{"0-11-53", false}, // ahead: a transaction the primary never had
		{"0-12-3", false},  // written on the replica itself
		{"1-10-1", false},  // another domain
	} {
		ok, missing := gtidContained(mustGTIDs(t, tc.pos), state)
		if ok != tc.want || (ok == (len(missing) > 0)) {
			t.Errorf("gtidContained(%q) = %v %v, want %v", tc.pos, ok, missing, tc.want)
		}
	}
}

func TestGTIDReached(t *testing.T) {
	pos := mustGTIDs(t, "0-11-52,1-3-7")
	for want, reached := range map[string]bool{"": true, "0-10-52": true, "0-11-53": false, "1-3-7": true, "2-1-1": false} {
		if got := gtidReached(pos, mustGTIDs(t, want)); got != reached {
			t.Errorf("gtidReached(%q) = %v", want, got)
		}
	}
}
