package validate

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func run(v validator.String, value types.String) string {
	resp := &validator.StringResponse{}
	v.ValidateString(context.Background(), validator.StringRequest{Path: path.Root("x"), ConfigValue: value}, resp)
	if !resp.Diagnostics.HasError() {
		return ""
	}
	return resp.Diagnostics.Errors()[0].Detail()
}

func TestValidators(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcLiPSRiUfR0/gAH1VHK2iBPMDp3hI3qVYnZ7FdBT9v"
	cases := []struct {
		name    string
		v       validator.String
		value   types.String
		wantErr string // "" means valid
	}{
		{"duration ok", Duration(), types.StringValue("90s"), ""},
		{"duration bad", Duration(), types.StringValue("ninety"), "duration"},
		{"duration zero", Duration(), types.StringValue("0s"), "not positive"},
		{"duration unknown", Duration(), types.StringUnknown(), ""},
		{"duration null", Duration(), types.StringNull(), ""},
		{"key ok", PublicKey(), types.StringValue(key), ""},
		{"key with comment", PublicKey(), types.StringValue(key + " root@web1"), ""},
		{"key garbage", PublicKey(), types.StringValue("ssh-ed25519 nope"), "authorized_keys"},
		{"key two", PublicKey(), types.StringValue(key + "\n" + key), "more than one"},
		{"host ip", Host(), types.StringValue("10.0.0.5"), ""},
		{"host ipv6", Host(), types.StringValue("fd00::5"), ""},
		{"host name", Host(), types.StringValue("web-1.example.org"), ""},
		{"host scheme", Host(), types.StringValue("ssh://web1"), "scheme"},
		{"host port", Host(), types.StringValue("web1:22"), "port"},
		{"host space", Host(), types.StringValue("web 1"), "not a valid host name"},
		{"host empty", Host(), types.StringValue(""), "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := run(c.v, c.value)
			switch {
			case c.wantErr == "" && got != "":
				t.Fatalf("want valid, got %q", got)
			case c.wantErr != "" && !strings.Contains(got, c.wantErr):
				t.Fatalf("want error containing %q, got %q", c.wantErr, got)
			}
		})
	}
}
