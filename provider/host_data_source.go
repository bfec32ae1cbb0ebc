package provider

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/mohd-dev/mohd/internal/hostfacts"
	"github.com/mohd-dev/mohd/internal/sshx"
	"github.com/mohd-dev/mohd/provider/internal/validate"
)

var _ datasource.DataSourceWithConfigure = (*hostDataSource)(nil)

type hostDataSource struct {
	data *providerData
}

func newHostDataSource() datasource.DataSource { return &hostDataSource{} }

type hostModel struct {
	ID             types.String      `tfsdk:"id"`
	Host           types.String      `tfsdk:"host"`
	Port           types.Int64       `tfsdk:"port"`
	HostKey        types.String      `tfsdk:"host_key"`
	Hostname       types.String      `tfsdk:"hostname"`
	OSID           types.String      `tfsdk:"os_id"`
	OSVersionID    types.String      `tfsdk:"os_version_id"`
	OSPrettyName   types.String      `tfsdk:"os_pretty_name"`
	Kernel         types.String      `tfsdk:"kernel"`
	Arch           types.String      `tfsdk:"arch"`
	Virtualization types.String      `tfsdk:"virtualization"`
	CPUs           types.Int64       `tfsdk:"cpus"`
	MemoryMB       types.Int64       `tfsdk:"memory_mb"`
	Disks          []diskModel       `tfsdk:"disks"`
	Filesystems    []filesystemModel `tfsdk:"filesystems"`
	Role           types.String      `tfsdk:"role"`
	ImageManifest  types.String      `tfsdk:"image_manifest"`
}

type diskModel struct {
	Name       types.String `tfsdk:"name"`
	SizeBytes  types.Int64  `tfsdk:"size_bytes"`
	Rotational types.Bool   `tfsdk:"rotational"`
}

type filesystemModel struct {
	Mountpoint     types.String `tfsdk:"mountpoint"`
	Type           types.String `tfsdk:"type"`
	SizeBytes      types.Int64  `tfsdk:"size_bytes"`
	AvailableBytes types.Int64  `tfsdk:"available_bytes"`
}

func (d *hostDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_host"
}

func (d *hostDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computedString := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	computedInt := func(desc string) schema.Int64Attribute {
		return schema.Int64Attribute{Computed: true, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads a host's facts over SSH (host key verified): OS, CPUs, RAM, disks and filesystems, " +
			"and the role of the MOHD image it was cloned from. Useful for sizing, and to check a host before wiring it. " +
			"It only reads; it never changes the host.",
		Attributes: map[string]schema.Attribute{
			"id": computedString("`host:port`."),
			"host": schema.StringAttribute{Required: true, MarkdownDescription: "Address or name of the host.",
				Validators: []validator.String{validate.Host()}},
			"port": schema.Int64Attribute{Optional: true, MarkdownDescription: "SSH port (default 22).",
				Validators: []validator.Int64{int64validator.Between(1, 65535)}},
			"host_key": schema.StringAttribute{Optional: true,
				MarkdownDescription: "The host's SSH public key (authorized_keys format). Without it, the provider's `ssh.known_hosts` must know the host.",
				Validators:          []validator.String{validate.PublicKey()}},
			"hostname":       computedString("The host's name."),
			"os_id":          computedString("`ID` from /etc/os-release (`debian`)."),
			"os_version_id":  computedString("`VERSION_ID` from /etc/os-release (`12`)."),
			"os_pretty_name": computedString("`PRETTY_NAME` from /etc/os-release."),
			"kernel":         computedString("Kernel release."),
			"arch":           computedString("Machine architecture (`x86_64`)."),
			"virtualization": computedString("What systemd-detect-virt reports (`vmware`, `kvm`, `docker`, `none`)."),
			"cpus":           computedInt("CPUs available to the host."),
			"memory_mb":      computedInt("RAM available to the host, in MiB (a container's memory limit where one is set)."),
			"disks": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "Whole disks.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":       computedString("Device name (`sdb`)."),
					"size_bytes": computedInt("Size in bytes."),
					"rotational": schema.BoolAttribute{Computed: true, MarkdownDescription: "False for SSDs."},
				}}},
			"filesystems": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "Mounted filesystems (no tmpfs).",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"mountpoint":      computedString("Mount point."),
					"type":            computedString("Filesystem type."),
					"size_bytes":      computedInt("Size in bytes."),
					"available_bytes": computedInt("Free bytes available to users."),
				}}},
			"role":           computedString("The MOHD role of the image the host was built from; null when the host carries no MOHD image manifest."),
			"image_manifest": computedString("The image manifest (JSON) written by MOHD's Packer provisioner; null when absent."),
		},
	}
}

func (d *hostDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	if data, ok := configured(req.ProviderData); ok {
		d.data = data
	}
}

func (d *hostDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m hostModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if d.data == nil {
		resp.Diagnostics.AddError("Provider not configured", "The moodle provider was not configured before reading moodle_host.")
		return
	}
	if d.data.pool == nil {
		resp.Diagnostics.AddError("Provider configuration not known yet",
			"The moodle provider's ssh settings depend on values that are known only after apply, so moodle_host cannot "+
				"connect to "+m.Host.ValueString()+" during this plan. Give the provider values known at plan time "+
				"(variables, files, ephemeral values), or apply the resources they come from first (-target).")
		return
	}
	port := int(m.Port.ValueInt64())
	if port == 0 {
		port = 22
	}
	target := sshx.Target{Host: m.Host.ValueString(), Port: port, HostKey: m.HostKey.ValueString()}
	ctx = tflog.SetField(ctx, "host", target.Host)
	tflog.Info(ctx, "reading host facts")
	host, err := d.data.pool.Host(target)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("host"), "Invalid host", err.Error())
		return
	}
	facts, err := hostfacts.Probe(ctx, host)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Cannot read the facts of %s", target.Host), err.Error())
		return
	}
	m.ID = types.StringValue(net.JoinHostPort(target.Host, strconv.Itoa(port)))
	m.Hostname = types.StringValue(facts.Hostname)
	m.OSID = types.StringValue(facts.OSID)
	m.OSVersionID = types.StringValue(facts.OSVersionID)
	m.OSPrettyName = types.StringValue(facts.OSPrettyName)
	m.Kernel = types.StringValue(facts.Kernel)
	m.Arch = types.StringValue(facts.Arch)
	m.Virtualization = types.StringValue(facts.Virtualization)
	m.CPUs = types.Int64Value(int64(facts.CPUs))
	m.MemoryMB = types.Int64Value(facts.MemoryBytes / (1 << 20))
	m.Disks = make([]diskModel, 0, len(facts.Disks))
	for _, dk := range facts.Disks {
		m.Disks = append(m.Disks, diskModel{Name: types.StringValue(dk.Name), SizeBytes: types.Int64Value(dk.SizeBytes),
			Rotational: types.BoolValue(dk.Rotational)})
	}
	m.Filesystems = make([]filesystemModel, 0, len(facts.Filesystems))
	for _, fs := range facts.Filesystems {
		m.Filesystems = append(m.Filesystems, filesystemModel{Mountpoint: types.StringValue(fs.Mountpoint),
			Type: types.StringValue(fs.Type), SizeBytes: types.Int64Value(fs.SizeBytes), AvailableBytes: types.Int64Value(fs.AvailableBytes)})
	}
	m.Role, m.ImageManifest = types.StringNull(), types.StringNull()
	if facts.Manifest != nil {
		m.Role = types.StringValue(facts.Manifest.Role)
		m.ImageManifest = types.StringValue(facts.ManifestRaw)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
