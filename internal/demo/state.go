package demo

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// State is what outlives the command that started the demo: the lab's identity and its hosts, so that a later
// `make demo` reuses the running hosts and `make demo-destroy` finds everything to remove. It is written as
// soon as the lab's network exists, so even an interrupted start can be torn down.
type State struct {
	LabID   string `json:"lab_id"`
	Network string `json:"network"`
	Subnet  string `json:"subnet"`
	User    string `json:"user"`
	// KeyFile is the cloud user's private key (0600), the one every host accepts.
	KeyFile string `json:"key_file"`
	// SeedDir is the lab's first-boot seed directory, bind-mounted into every host: it must exist for a
	// stopped host to start again, and is removed with the demo.
	SeedDir string `json:"seed_dir,omitempty"`
	// Volume is the shared moodledata volume of the web nodes (the lab's kernel has no NFS client).
	Volume string `json:"volume"`
	// VIP is the front ends' virtual address with its prefix length.
	VIP   string      `json:"vip"`
	Hosts []HostState `json:"hosts"`
}

// HostState is one host of the demo.
type HostState struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	Image     string `json:"image"`
	Addr      string `json:"addr"`
	Port      int    `json:"port"`
	Container string `json:"container"`
	HostKey   string `json:"host_key"`
}

// Host returns the named host.
func (s *State) Host(name string) (HostState, bool) {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return HostState{}, false
}

// VIPAddr is the VIP without its prefix length.
func (s *State) VIPAddr() string { addr, _, _ := strings.Cut(s.VIP, "/"); return addr }

// URL is the site's address.
func (s *State) URL() string { return "http://" + s.VIPAddr() + "/" }

func readState(path string) (*State, error) {
	b, err := os.ReadFile(path) //nolint:gosec // the demo's own state file
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("demo state %s is unreadable (%w): remove the demo with `make demo-destroy`", path, err)
	}
	return &s, nil
}

func writeState(path string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o600)
}

// Secrets are the site's generated passwords, kept (0600) so that every apply uses the same ones.
type Secrets struct {
	Admin       string `json:"admin"`
	Database    string `json:"database"`
	Replication string `json:"replication"`
	Redis       string `json:"redis"`
}

// loadSecrets reads the demo's passwords, generating and saving them the first time.
func loadSecrets(path string) (Secrets, error) {
	var s Secrets
	b, err := os.ReadFile(path) //nolint:gosec // the demo's own file
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s); err != nil {
			return s, fmt.Errorf("%s is unreadable: %w", path, err)
		}
		if s.Admin != "" && s.Database != "" && s.Replication != "" && s.Redis != "" {
			return s, nil
		}
	case !errors.Is(err, os.ErrNotExist):
		return s, err
	}
	for _, p := range []*string{&s.Admin, &s.Database, &s.Replication, &s.Redis} {
		if *p, err = password(); err != nil {
			return s, err
		}
	}
	b, err = json.MarshalIndent(s, "", "  ")
	if err != nil {
		return s, err
	}
	return s, writeFileAtomic(path, append(b, '\n'), 0o600)
}

// password is 20 random letters and digits, then one character of each class Moodle's default password
// policy asks for; none of them needs quoting in HCL, PHP, an ini file or Redis' configuration.
func password() (string, error) {
	const alnum = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	var b strings.Builder
	for range 20 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alnum))))
		if err != nil {
			return "", err
		}
		b.WriteByte(alnum[n.Int64()])
	}
	b.WriteString("-a7Z")
	return b.String(), nil
}

// writeFileAtomic writes a file with mode through a temporary file in the same directory, so that a reader
// never sees half a file and the mode holds from the first byte.
func writeFileAtomic(path string, content []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(content); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// lockDir takes an exclusive lock on dir/lock so that two demo commands never work on the same lab at once.
func lockDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600) //nolint:gosec // our own lock file
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil { //nolint:gosec // an fd fits an int
		_ = f.Close()
		return nil, fmt.Errorf("another demo command is working on %s (lock held): wait for it", dir)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil //nolint:gosec // an fd fits an int
}
