package roles

import (
	"context"

	"github.com/mohd-dev/mohd/internal/remote"
)

// generalizeSteps make a machine an image: no host identity, no caches, no logs. Each is idempotent.
var generalizeSteps = []Step{
	{Desc: "remove the SSH host keys", Script: "rm -f /etc/ssh/ssh_host_*"},
	// Empty, not absent: systemd then treats the clone's first boot as a first boot and creates a new id.
	{Desc: "empty /etc/machine-id", Script: "if [ -e /etc/machine-id ]; then truncate -s 0 /etc/machine-id; fi"},
	{Desc: "remove /var/lib/dbus/machine-id", Script: "rm -f /var/lib/dbus/machine-id"},
	{Desc: "clean cloud-init", Script: "if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs; fi"},
	{Desc: "clean the apt caches and lists", Script: "apt-get clean\nrm -rf /var/lib/apt/lists/*"},
	// Rotated logs go; the others are truncated, not removed, since daemons keep them open. The journal's
	// files are removed instead: journald maps them, and an emptied journal file is corrupt.
	{Desc: "clear the logs", Script: "find /var/log -type f \\( -name '*.gz' -o -name '*.xz' -o -name '*.[0-9]' -o -name '*.old' \\) -delete\n" +
		"if [ -d /var/log/journal ]; then find /var/log/journal -type f -name '*.journal*' -delete; fi\n" +
		"find /var/log -path /var/log/journal -prune -o -type f -exec truncate -s 0 {} +"},
}

// Generalize removes what makes the machine this machine, so that each clone of the image gets its own
// identity (SSH host keys, machine-id, cloud-init state) and the image carries no caches or logs. Packer
// runs it last, right before capture; the host's SSH keys come back at its next boot.
func Generalize(ctx context.Context, h remote.Host, say Progress) error {
	for _, s := range generalizeSteps {
		if say != nil {
			say("generalize: " + s.Desc)
		}
		if _, err := h.Run(ctx, remote.Cmd{Command: "sh -eu", Stdin: []byte(s.Script), Desc: "generalize: " + s.Desc}); err != nil {
			return err
		}
	}
	return nil
}
