package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/mohd-dev/mohd/internal/cluster"
	"github.com/mohd-dev/mohd/internal/moodle"
	"github.com/mohd-dev/mohd/provider/internal/validate"
)

var (
	_ resource.ResourceWithConfigure   = (*clusterResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*clusterResource)(nil)
	_ resource.ResourceWithImportState = (*clusterResource)(nil)
)

type clusterResource struct{ resourceBase }

func newClusterResource() resource.Resource { return &clusterResource{} }

type clusterModel struct {
	ID              types.String   `tfsdk:"id"`
	Name            types.String   `tfsdk:"name"`
	WWWRoot         types.String   `tfsdk:"wwwroot"`
	ClusterCIDR     types.String   `tfsdk:"cluster_cidr"`
	Frontends       []targetModel  `tfsdk:"frontends"`
	VIP             types.String   `tfsdk:"vip"`
	TLS             *tlsModel      `tfsdk:"tls"`
	Database        databaseModel  `tfsdk:"database"`
	NFS             nfsModel       `tfsdk:"nfs"`
	Redis           redisModel     `tfsdk:"redis"`
	Monitoring      *monitorModel  `tfsdk:"monitoring"`
	Code            codeModel      `tfsdk:"code"`
	Admin           adminModel     `tfsdk:"admin"`
	LogLifetimeDays types.Int64    `tfsdk:"log_lifetime_days"`
	Settings        types.Map      `tfsdk:"settings"`
	Spec            types.String   `tfsdk:"spec"`
	Primary         types.String   `tfsdk:"primary"`
	MoodleVersion   types.String   `tfsdk:"moodle_version"`
	MoodleRelease   types.String   `tfsdk:"moodle_release"`
	LastEvent       types.String   `tfsdk:"last_event"`
	Drift           types.List     `tfsdk:"drift"`
	Timeouts        timeouts.Value `tfsdk:"timeouts"`
}

type tlsModel struct {
	Certificate types.String `tfsdk:"certificate"`
	PrivateKey  types.String `tfsdk:"private_key"`
}

type databaseModel struct {
	Primary             targetModel  `tfsdk:"primary"`
	Name                types.String `tfsdk:"name"`
	User                types.String `tfsdk:"user"`
	Password            types.String `tfsdk:"password"`
	ReplicationUser     types.String `tfsdk:"replication_user"`
	ReplicationPassword types.String `tfsdk:"replication_password"`
}

type nfsModel struct {
	Host            targetModel  `tfsdk:"host"`
	Export          types.String `tfsdk:"export"`
	Version         types.String `tfsdk:"version"`
	ExistingStorage types.Bool   `tfsdk:"existing_storage"`
}

type redisModel struct {
	Host     targetModel  `tfsdk:"host"`
	Password types.String `tfsdk:"password"`
}

type monitorModel struct {
	Host       targetModel  `tfsdk:"host"`
	WebhookURL types.String `tfsdk:"mattermost_webhook_url"`
}

type codeModel struct {
	GitURL types.String `tfsdk:"git_url"`
	Ref    types.String `tfsdk:"ref"`
	Path   types.String `tfsdk:"path"`
}

type adminModel struct {
	User      types.String `tfsdk:"user"`
	Password  types.String `tfsdk:"password"`
	Email     types.String `tfsdk:"email"`
	FullName  types.String `tfsdk:"site_full_name"`
	ShortName types.String `tfsdk:"site_short_name"`
}

func (r *clusterResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster"
}

func (r *clusterResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	str := func(required bool, desc string, v ...validator.String) schema.StringAttribute {
		return schema.StringAttribute{Required: required, Optional: !required, MarkdownDescription: desc, Validators: v}
	}
	secret := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Required: true, Sensitive: true, MarkdownDescription: desc,
			Validators: []validator.String{stringvalidator.LengthAtLeast(12), stringvalidator.NoneOf("changeme", "password")}}
	}
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "One highly-available Moodle site: configures the NFS share, Redis, the MariaDB primary and the " +
			"HAProxy front ends (with a keepalived virtual IP when there are two). Web nodes join it with `moodle_backend`, " +
			"database replicas with `moodle_db_replica`, both given this resource's `spec`. Changing `database.primary` " +
			"to the host of one of its replicas switches the database over (or fails over when the old primary is down).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, PlanModifiers: useState(), MarkdownDescription: "The site's name."},
			"name": schema.StringAttribute{Required: true, MarkdownDescription: "Short name of the site (letters, digits, `-`, `_`).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{stringvalidator.RegexMatches(nameRE, "must be 1-32 letters, digits, '-' or '_'")}},
			"wwwroot": str(true, "Moodle's `$CFG->wwwroot`: the URL users type, identical on every node (no trailing slash).",
				validate.Check("must be Moodle's wwwroot", cluster.ValidateWWWRoot)),
			"cluster_cidr": str(true, "The private network of the cluster's hosts: database accounts and the NFS export are limited to it.",
				validate.CIDR()),
			"frontends": schema.ListNestedAttribute{Required: true,
				MarkdownDescription: "One or two HAProxy hosts (role `haproxy`). With two, `vip` floats between them.",
				NestedObject:        schema.NestedAttributeObject{Attributes: hostAttributes()},
				Validators:          []validator.List{listvalidator.SizeBetween(1, 2)}},
			"vip": str(false, "With two front ends: the virtual address and prefix length users reach (`10.20.0.10/24`), held by keepalived.",
				validate.CIDR()),
			"tls": schema.SingleNestedAttribute{Optional: true,
				MarkdownDescription: "TLS at the front ends (HTTP is redirected to HTTPS). Omit for plain HTTP (labs only).",
				Attributes: map[string]schema.Attribute{
					"certificate": schema.StringAttribute{Required: true, MarkdownDescription: "PEM certificate followed by its chain."},
					"private_key": schema.StringAttribute{Required: true, Sensitive: true, MarkdownDescription: "PEM private key."},
				}},
			"database": schema.SingleNestedAttribute{Required: true, MarkdownDescription: "The MariaDB primary and Moodle's accounts.",
				Attributes: map[string]schema.Attribute{
					"primary": hostAttribute("The primary (role `db`). Set it to a replica's host to switch over (or fail over)."),
					"name": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("moodle"),
						MarkdownDescription: "Database name.", Validators: []validator.String{stringvalidator.RegexMatches(identRE, "must be a plain identifier")}},
					"user": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("moodle"),
						MarkdownDescription: "Moodle's account (privileges on its database only).", Validators: []validator.String{stringvalidator.RegexMatches(identRE, "must be a plain identifier")}},
					"password": secret("Moodle's database password."),
					"replication_user": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("mohd_repl"),
						MarkdownDescription: "The replicas' account.", Validators: []validator.String{stringvalidator.RegexMatches(identRE, "must be a plain identifier")}},
					"replication_password": secret("The replication account's password."),
				}},
			"nfs": schema.SingleNestedAttribute{Required: true, MarkdownDescription: "The moodledata share (role `nfs`).",
				Attributes: map[string]schema.Attribute{
					"host": hostAttribute("The NFS server."),
					"export": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("/moodledata"),
						MarkdownDescription: "Export path the web nodes mount."},
					"version": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("3"),
						MarkdownDescription: "NFS version the web nodes mount: `3` (as the original deployment) or `4.2`.",
						Validators:          []validator.String{stringvalidator.OneOf("3", "4.2")}},
					"existing_storage": schema.BoolAttribute{Optional: true,
						MarkdownDescription: "The web nodes already have shared storage at moodledata (a platform volume, or the lab's " +
							"shared Docker volume where the kernel has no NFS client): MOHD checks it instead of mounting NFS."},
				}},
			"redis": schema.SingleNestedAttribute{Required: true, MarkdownDescription: "Redis for PHP sessions (role `redis`).",
				Attributes: map[string]schema.Attribute{
					"host":     hostAttribute("The Redis server."),
					"password": secret("Redis password (`requirepass`)."),
				}},
			"monitoring": schema.SingleNestedAttribute{Optional: true,
				MarkdownDescription: "The monitoring host (role `monitoring`: Prometheus, Alertmanager). Every cluster member, backend and " +
					"replica registers its exporters there (node, HAProxy, Apache, PHP-FPM, MariaDB with replication, Redis).",
				Attributes: map[string]schema.Attribute{
					"host": hostAttribute("The monitoring host."),
					"mattermost_webhook_url": schema.StringAttribute{Optional: true, Sensitive: true,
						MarkdownDescription: "Mattermost incoming webhook Alertmanager posts alerts to; without it alerts stay in Alertmanager's UI."},
				}},
			"code": schema.SingleNestedAttribute{Required: true,
				MarkdownDescription: "Moodle's code: a git repository and ref (your institution's mirror, pinned), or a local directory " +
					"or `.tar.gz` the provider uploads (air-gapped sites, tests). Changing it deploys and upgrades every backend.",
				Attributes: map[string]schema.Attribute{
					"git_url": str(false, "Git URL reachable from the web nodes."),
					"ref":     str(false, "Tag, branch or commit (pin a tag or commit in production)."),
					"path":    str(false, "Directory or `.tar.gz` on the machine running Terraform."),
				}},
			"admin": schema.SingleNestedAttribute{Required: true, MarkdownDescription: "The site's first administrator, set at installation.",
				Attributes: map[string]schema.Attribute{
					"user":     schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("admin"), MarkdownDescription: "Admin user name."},
					"password": secret("Admin password (used once, at installation)."),
					"email":    schema.StringAttribute{Required: true, MarkdownDescription: "Admin e-mail.", Validators: []validator.String{stringvalidator.RegexMatches(emailRE, "must be an e-mail address")}},
					"site_full_name": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("Moodle"),
						MarkdownDescription: "Site full name."},
					"site_short_name": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("moodle"),
						MarkdownDescription: "Site short name."},
				}},
			"log_lifetime_days": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(365),
				MarkdownDescription: "Days Moodle's standard log is kept (logstore_standard `loglifetime`; 0 keeps it forever).",
				Validators:          []validator.Int64{int64validator.AtLeast(0)}},
			"settings": schema.MapAttribute{Optional: true, ElementType: types.StringType,
				MarkdownDescription: "More `$CFG` settings for config.php (session handler options and the like). Unknown keys, and keys MOHD sets itself, are refused.",
				Validators:          []validator.Map{settingsKeys{}}},
			"spec": schema.StringAttribute{Computed: true, Sensitive: true,
				MarkdownDescription: "Everything a `moodle_backend` or `moodle_db_replica` needs to join this cluster (hosts and secrets): pass it as their `cluster`."},
			"primary":        schema.StringAttribute{Computed: true, MarkdownDescription: "Address of the current database primary."},
			"moodle_version": computed("Moodle's version number read from the site's database (empty until installed)."),
			"moodle_release": computed("Moodle's release read from the site's database."),
			"last_event": schema.StringAttribute{Computed: true,
				MarkdownDescription: "What the last apply did beyond converging (a switchover, a failover)."},
			"drift":    driftAttribute(),
			"timeouts": timeouts.Attributes(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (m *clusterModel) spec(ctx context.Context) (*cluster.Spec, diag.Diagnostics) {
	var diags diag.Diagnostics
	s := &cluster.Spec{
		Name:        m.Name.ValueString(),
		WWWRoot:     m.WWWRoot.ValueString(),
		ClusterCIDR: m.ClusterCIDR.ValueString(),
		VIP:         m.VIP.ValueString(),
		Database: cluster.Database{
			Primary: m.Database.Primary.host(), Name: m.Database.Name.ValueString(),
			User: m.Database.User.ValueString(), Password: m.Database.Password.ValueString(),
			ReplicationUser: m.Database.ReplicationUser.ValueString(), ReplicationPassword: m.Database.ReplicationPassword.ValueString(),
		},
		NFS: cluster.NFS{Host: m.NFS.Host.host(), Export: m.NFS.Export.ValueString(), Version: m.NFS.Version.ValueString(),
			ExistingStorage: m.NFS.ExistingStorage.ValueBool()},
		Redis: cluster.Redis{Host: m.Redis.Host.host(), Password: m.Redis.Password.ValueString()},
		Code:  moodle.Source{GitURL: m.Code.GitURL.ValueString(), Ref: m.Code.Ref.ValueString(), Path: m.Code.Path.ValueString()},
		Admin: moodle.Admin{User: m.Admin.User.ValueString(), Password: m.Admin.Password.ValueString(), Email: m.Admin.Email.ValueString(),
			FullName: m.Admin.FullName.ValueString(), ShortName: m.Admin.ShortName.ValueString()},
		LogLifetimeDays: int(m.LogLifetimeDays.ValueInt64()),
	}
	for _, f := range m.Frontends {
		s.Frontends = append(s.Frontends, f.host())
	}
	if m.TLS != nil {
		s.TLSCertificate, s.TLSKey = m.TLS.Certificate.ValueString(), m.TLS.PrivateKey.ValueString()
	}
	if m.Monitoring != nil {
		s.Monitoring = &cluster.Monitoring{Host: m.Monitoring.Host.host(), WebhookURL: m.Monitoring.WebhookURL.ValueString()}
	}
	if !m.Settings.IsNull() {
		s.Settings = map[string]string{}
		diags.Append(m.Settings.ElementsAs(ctx, &s.Settings, false)...)
	}
	return s, diags
}

// ModifyPlan validates the whole site once every value is known, and computes the spec from the plan
// (it depends only on the configuration), so that backends and replicas plan against known values.
func (r *clusterResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	planNoDrift(ctx, req.State, &resp.Plan, &resp.Diagnostics, map[string]attr.Value{
		"moodle_version": types.StringUnknown(), "moodle_release": types.StringUnknown(), "last_event": types.StringUnknown(),
	})
	if !req.Config.Raw.IsFullyKnown() {
		return
	}
	var m clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s, diags := m.spec(ctx)
	resp.Diagnostics.Append(diags...)
	if err := s.Validate(); err != nil {
		resp.Diagnostics.AddError("Invalid moodle_cluster", err.Error())
		return
	}
	conn, err := s.Encode()
	if err != nil {
		resp.Diagnostics.AddError("Encoding the cluster spec", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("spec"), conn)...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), s.Name)...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("primary"), s.Database.Primary.Address)...)
	if !req.State.Raw.IsNull() {
		var prior clusterModel
		resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
		if !prior.Primary.IsNull() && prior.Primary.ValueString() != s.Database.Primary.Address {
			resp.Diagnostics.AddWarning("The database primary moves",
				fmt.Sprintf("Applying this plan makes %s the primary instead of %s: a switchover when %[2]s answers (writes pause while the replica catches up), "+
					"a failover when it does not. Every backend is then pointed at the new primary.", s.Database.Primary.Address, prior.Primary.ValueString()))
		}
	}
}

func (r *clusterResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Create(ctx, 30*time.Minute)
	resp.Diagnostics.Append(diags...)
	r.apply(ctx, timeout, &m, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *clusterResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m clusterModel
	var prior *clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if !importedOnly(ctx, req.State, "spec", &resp.Diagnostics) {
		prior = &clusterModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, prior)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Update(ctx, 30*time.Minute)
	resp.Diagnostics.Append(diags...)
	r.apply(ctx, timeout, &m, prior, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// apply converges the hosts and fills the computed values. On failure the state still records the
// configuration (what the next apply converges to) with the error as the last event.
func (r *clusterResource) apply(ctx context.Context, timeout time.Duration, m, prior *clusterModel, diags *diag.Diagnostics) {
	dial := r.dialer(diags)
	s, d := m.spec(ctx)
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	var prev *cluster.Spec
	if prior != nil {
		p, err := cluster.Decode(prior.Spec.ValueString())
		if err != nil {
			diags.AddError("Reading the previous cluster state", err.Error())
			return
		}
		prev = p
		// The primary the hosts have is the one recorded after the last apply (a failed switchover keeps it).
		prev.Database.Primary.Address = prior.Primary.ValueString()
	}
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	st, err := cluster.Apply(ctx, dial, s, prev, progress(ctx, "moodle_cluster."+s.Name))
	conn, encErr := s.Encode()
	if encErr != nil {
		diags.AddError("Encoding the cluster spec", encErr.Error())
		return
	}
	m.ID = types.StringValue(s.Name)
	m.Spec = types.StringValue(conn)
	m.Primary = types.StringValue(st.Primary)
	m.MoodleVersion = types.StringValue(st.MoodleVersion)
	m.MoodleRelease = types.StringValue(st.MoodleRelease)
	// The last event stays until another one happens.
	switch {
	case st.Event != "":
		m.LastEvent = types.StringValue(st.Event)
	case prior != nil && !prior.LastEvent.IsNull() && !prior.LastEvent.IsUnknown():
		m.LastEvent = prior.LastEvent
	default:
		m.LastEvent = types.StringValue("")
	}
	m.Drift = stringList(nil)
	if err != nil {
		if prev != nil && !prev.Database.Primary.Same(s.Database.Primary) && st.Event == "" {
			// The primary did not move: keep recording the old one so that the next apply retries the move.
			m.Primary = types.StringValue(prev.Database.Primary.Address)
		}
		diags.AddError("Configuring the Moodle cluster failed", err.Error()+"\n\nFix the cause and apply again: every step is idempotent and the next apply resumes.")
	}
}

func (r *clusterResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if importedOnly(ctx, req.State, "spec", &resp.Diagnostics) {
		return
	}
	var m clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	dial := r.dialer(&resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	s, diags := m.spec(ctx)
	resp.Diagnostics.Append(diags...)
	st, drift, err := cluster.Inspect(ctx, dial, s)
	if err != nil {
		resp.Diagnostics.AddError("Reading the Moodle cluster failed", err.Error())
		return
	}
	m.Primary = types.StringValue(st.Primary)
	m.MoodleVersion = types.StringValue(st.MoodleVersion)
	m.MoodleRelease = types.StringValue(st.MoodleRelease)
	m.Drift = stringList(drift)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Delete leaves the hosts as they are: the site's data (database, moodledata) is never destroyed by a
// provider; delete the hosts to remove it.
func (r *clusterResource) Delete(ctx context.Context, _ resource.DeleteRequest, resp *resource.DeleteResponse) {
	resp.Diagnostics.AddWarning("The cluster's hosts keep their data",
		"moodle_cluster was removed from the state; the database, moodledata and the hosts' configuration are left in place. Destroy the hosts to remove them.")
}

// ImportState takes the site's name; the next plan compares the configuration with the hosts (import is
// for hosts MOHD configured before, so an apply after it changes nothing that matches).
func (r *clusterResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("name"), req, resp)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
}
