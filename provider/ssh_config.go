package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/mohd-dev/mohd/internal/sshx"
	"github.com/mohd-dev/mohd/provider/internal/validate"
)

var sshPath = path.Root("ssh")

// sshModel maps the provider's ssh block. Names follow Terraform's own `spec` block where one exists.
type sshModel struct {
	User                  types.String   `tfsdk:"user"`
	PrivateKey            types.String   `tfsdk:"private_key"`
	PrivateKeyPassphrase  types.String   `tfsdk:"private_key_passphrase"`
	Certificate           types.String   `tfsdk:"certificate"`
	Agent                 types.Bool     `tfsdk:"agent"`
	AgentIdentity         types.String   `tfsdk:"agent_identity"`
	AgentSocket           types.String   `tfsdk:"agent_socket"`
	KnownHosts            types.String   `tfsdk:"known_hosts"`
	InsecureIgnoreHostKey types.Bool     `tfsdk:"insecure_ignore_host_key"`
	MaxSessions           types.Int64    `tfsdk:"max_sessions"`
	Timeout               types.String   `tfsdk:"timeout"`
	Bastion               []bastionModel `tfsdk:"bastion"`
}

type bastionModel struct {
	Host                 types.String `tfsdk:"host"`
	Port                 types.Int64  `tfsdk:"port"`
	User                 types.String `tfsdk:"user"`
	PrivateKey           types.String `tfsdk:"private_key"`
	PrivateKeyPassphrase types.String `tfsdk:"private_key_passphrase"`
	Certificate          types.String `tfsdk:"certificate"`
	Agent                types.Bool   `tfsdk:"agent"`
	HostKey              types.String `tfsdk:"host_key"`
}

func sshBlock() schema.SingleNestedBlock {
	return schema.SingleNestedBlock{
		MarkdownDescription: "How MOHD reaches hosts over SSH. Host keys are always verified: give each host's `host_key` " +
			"on the resource, or `known_hosts` here (with `@cert-authority` lines for a host CA).",
		Attributes: map[string]schema.Attribute{
			"user": schema.StringAttribute{Optional: true, MarkdownDescription: "Login user (default `debian`, the cloud image user). " +
				"A non-root user needs passwordless sudo (`NOPASSWD`): commands run through `sudo -n`."},
			"private_key": schema.StringAttribute{Optional: true, Sensitive: true,
				MarkdownDescription: "Private key contents (PEM or OpenSSH format), e.g. `file(\"~/.ssh/id_ed25519\")` or an ephemeral value."},
			"private_key_passphrase": schema.StringAttribute{Optional: true, Sensitive: true,
				MarkdownDescription: "Passphrase of an encrypted `private_key`."},
			"certificate": schema.StringAttribute{Optional: true,
				MarkdownDescription: "OpenSSH user certificate (contents) signed for `private_key` or the agent identity."},
			"agent": schema.BoolAttribute{Optional: true,
				MarkdownDescription: "Authenticate with ssh-agent (`SSH_AUTH_SOCK`, or `agent_socket`)."},
			"agent_identity": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Which agent identity to use, by comment or public key, when the agent holds several."},
			"agent_socket": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Path of the agent socket; default `SSH_AUTH_SOCK`."},
			"known_hosts": schema.StringAttribute{Optional: true,
				MarkdownDescription: "known_hosts contents used for hosts that have no `host_key` (hashed entries and `@cert-authority` lines work)."},
			"insecure_ignore_host_key": schema.BoolAttribute{Optional: true,
				MarkdownDescription: "**Insecure.** Accept any host key. Every connection then logs a warning; never use it in production."},
			"max_sessions": schema.Int64Attribute{Optional: true,
				MarkdownDescription: "Concurrent SSH sessions per host (default 8, below OpenSSH's MaxSessions of 10).",
				Validators:          []validator.Int64{int64validator.Between(1, 64)}},
			"timeout": schema.StringAttribute{Optional: true,
				MarkdownDescription: "How long to keep retrying a host that refuses or does not answer yet (a Go duration, default `5m`).",
				Validators:          []validator.String{validate.Duration()}},
		},
		Blocks: map[string]schema.Block{
			"bastion": schema.ListNestedBlock{
				MarkdownDescription: "Jump hosts, in order from this machine to the targets (chains of several hops work).",
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"host": schema.StringAttribute{Required: true, MarkdownDescription: "Address of the jump host."},
					"port": schema.Int64Attribute{Optional: true, MarkdownDescription: "SSH port (default 22).",
						Validators: []validator.Int64{int64validator.Between(1, 65535)}},
					"user": schema.StringAttribute{Optional: true, MarkdownDescription: "User on the jump host (default: `ssh.user`)."},
					"private_key": schema.StringAttribute{Optional: true, Sensitive: true,
						MarkdownDescription: "Key for the jump host (default: `ssh.private_key`)."},
					"private_key_passphrase": schema.StringAttribute{Optional: true, Sensitive: true,
						MarkdownDescription: "Passphrase of the jump host's `private_key`."},
					"certificate": schema.StringAttribute{Optional: true, MarkdownDescription: "User certificate for the jump host."},
					"agent":       schema.BoolAttribute{Optional: true, MarkdownDescription: "Use ssh-agent for the jump host."},
					"host_key": schema.StringAttribute{Optional: true,
						MarkdownDescription: "The jump host's public key (authorized_keys format); else `known_hosts` is used.",
						Validators:          []validator.String{validate.PublicKey()}},
				}},
			},
		},
	}
}

// toConfig converts the block to the transport's configuration. A nil block means all defaults.
func (m *sshModel) toConfig(_ context.Context) (sshx.Config, diag.Diagnostics) {
	var diags diag.Diagnostics
	cfg := sshx.Config{Auth: sshx.Auth{User: "debian"}}
	if m == nil {
		return cfg, diags
	}
	if v := m.User.ValueString(); v != "" {
		cfg.User = v
	}
	cfg.PrivateKey = m.PrivateKey.ValueString()
	cfg.Passphrase = m.PrivateKeyPassphrase.ValueString()
	cfg.Certificate = m.Certificate.ValueString()
	cfg.Agent = m.Agent.ValueBool()
	cfg.AgentIdentity = m.AgentIdentity.ValueString()
	cfg.AgentSocket = m.AgentSocket.ValueString()
	cfg.KnownHosts = m.KnownHosts.ValueString()
	cfg.InsecureIgnoreHostKey = m.InsecureIgnoreHostKey.ValueBool()
	cfg.MaxSessions = int(m.MaxSessions.ValueInt64())
	if s := m.Timeout.ValueString(); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			diags.AddAttributeError(sshPath.AtName("timeout"), "Invalid duration", err.Error())
		}
		cfg.ConnectTimeout = d
	}
	for _, b := range m.Bastion {
		hop := sshx.Hop{
			Host: b.Host.ValueString(),
			Port: int(b.Port.ValueInt64()),
			Auth: sshx.Auth{
				User:        b.User.ValueString(),
				PrivateKey:  b.PrivateKey.ValueString(),
				Passphrase:  b.PrivateKeyPassphrase.ValueString(),
				Certificate: b.Certificate.ValueString(),
				Agent:       b.Agent.ValueBool(),
			},
			HostKey: b.HostKey.ValueString(),
		}
		cfg.Bastions = append(cfg.Bastions, hop)
	}
	return cfg, diags
}
