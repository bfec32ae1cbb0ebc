// Package validate holds the provider's plan-time validators, so bad input is refused before any host is
// touched, with a message that says what is expected.
package validate

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"golang.org/x/crypto/ssh"
)

// stringCheck adapts a func(string) error to a string validator; unknown and null values pass (they are
// checked again once known).
type stringCheck struct {
	desc  string
	check func(string) error
}

func (v stringCheck) Description(context.Context) string         { return v.desc }
func (v stringCheck) MarkdownDescription(context.Context) string { return v.desc }

func (v stringCheck) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.check(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid value", fmt.Sprintf("%s: %s", v.desc, err))
	}
}

// Duration accepts a Go duration such as "90s" or "5m", greater than zero.
func Duration() validator.String {
	return stringCheck{desc: `must be a duration such as "90s" or "5m"`, check: func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("%s is not positive", s)
		}
		return nil
	}}
}

// PublicKey accepts one SSH public key in authorized_keys format ("ssh-ed25519 AAAA... [comment]").
func PublicKey() validator.String {
	return stringCheck{desc: `must be an SSH public key in authorized_keys format ("ssh-ed25519 AAAA…")`, check: func(s string) error {
		_, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s))
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return fmt.Errorf("holds more than one key")
		}
		return nil
	}}
}

// Host accepts a host name or IP address: no scheme, no port, no spaces.
func Host() validator.String {
	return stringCheck{desc: "must be a host name or IP address without scheme or port", check: checkHost}
}

// Check adapts a domain check (the same function the apply runs) to a string validator described by desc, so
// the plan refuses what the apply would.
func Check(desc string, check func(string) error) validator.String {
	return stringCheck{desc: desc, check: check}
}

// CIDR accepts a network in CIDR notation ("10.20.0.0/24"); with address, an address with its prefix length
// ("10.20.0.10/24") is what is asked for.
func CIDR() validator.String {
	return stringCheck{desc: `must be in CIDR notation such as "10.20.0.0/24"`, check: func(s string) error {
		_, _, err := net.ParseCIDR(s)
		return err
	}}
}
