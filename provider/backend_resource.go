package provider

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
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
	"github.com/mohd-dev/mohd/provider/internal/validate"
)

var (
	_ resource.ResourceWithConfigure   = (*backendResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*backendResource)(nil)
	_ resource.ResourceWithImportState = (*backendResource)(nil)
)

type backendResource struct{ resourceBase }

func newBackendResource() resource.Resource { return &backendResource{} }

type backendModel struct {
	ID               types.String   `tfsdk:"id"`
	Cluster          types.String   `tfsdk:"cluster"`
	Name             types.String   `tfsdk:"name"`
	Host             targetModel    `tfsdk:"host"`
	Weight           types.Int64    `tfsdk:"weight"`
	State            types.String   `tfsdk:"state"`
	ReadReplicas     types.List     `tfsdk:"read_replicas"`
	FPMMaxChildren   types.Int64    `tfsdk:"fpm_max_children"`
	FPMChildMemoryMB types.Int64    `tfsdk:"fpm_child_memory_mb"`
	DrainTimeout     types.String   `tfsdk:"drain_timeout"`
	Release          types.String   `tfsdk:"release"`
	CodeVersion      types.String   `tfsdk:"code_version"`
	FPMPoolSize      types.Int64    `tfsdk:"fpm_pool_size"`
	FrontendStates   types.Map      `tfsdk:"frontend_states"`
	Drift            types.List     `tfsdk:"drift"`
	Timeouts         timeouts.Value `tfsdk:"timeouts"`
}

func (r *backendResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_backend"
}

func (r *backendResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	host := hostAttribute("The web node (role `web`). Another host means another node: the resource is replaced.")
	host.PlanModifiers = []planmodifier.Object{replaceUnlessImported()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "One Apache/PHP-FPM web node of a `moodle_cluster`: mounts moodledata, deploys Moodle's code in a release " +
			"directory switched atomically, writes config.php, runs cron (every node; Moodle's task locks run each task once), " +
			"installs Moodle's database if the site has none yet, and registers with every front end once its health check " +
			"answers. Deleting it drains it first: in-flight requests finish before it leaves the front ends.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, PlanModifiers: useState(), MarkdownDescription: "`<cluster>/<name>`."},
			"cluster": schema.StringAttribute{Required: true, Sensitive: true,
				MarkdownDescription: "The cluster's `spec` (`moodle_cluster.<name>.spec`)."},
			"name": schema.StringAttribute{Required: true, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				MarkdownDescription: "Name of the node in HAProxy (unique in the cluster).",
				Validators:          []validator.String{stringvalidator.RegexMatches(nameRE, "must be 1-32 letters, digits, '-' or '_'")}},
			"host": host,
			"weight": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(100),
				MarkdownDescription: "HAProxy weight (0-256): a node's share of new requests.",
				Validators:          []validator.Int64{int64validator.Between(0, 256)}},
			"state": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("active"),
				MarkdownDescription: "`active`; `drain` (no new requests, current ones finish); `maintenance` (out of the front ends).",
				Validators:          []validator.String{stringvalidator.OneOf(cluster.BackendStates...)}},
			"read_replicas": schema.ListAttribute{Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Addresses of the replicas Moodle sends read-only queries to (`$CFG->dboptions['readonly']`): the " +
					"`host.address` of each `moodle_db_replica` with `use_for_reads`."},
			"fpm_max_children": schema.Int64Attribute{Optional: true, Validators: []validator.Int64{int64validator.Between(4, 1000)},
				MarkdownDescription: "Cap on PHP-FPM workers; by default the pool is sized from the node's RAM at boot."},
			"fpm_child_memory_mb": schema.Int64Attribute{Optional: true, Validators: []validator.Int64{int64validator.Between(32, 2048)},
				MarkdownDescription: "Memory one busy PHP worker needs, for the RAM-derived sizing (default 80)."},
			"drain_timeout": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("5m"),
				MarkdownDescription: "How long a deletion waits for in-flight requests (backups, restores) before removing the node.",
				Validators:          []validator.String{validate.Duration()}},
			"release":         schema.StringAttribute{Computed: true, MarkdownDescription: "The deployed release directory's id."},
			"code_version":    schema.StringAttribute{Computed: true, MarkdownDescription: "Moodle version of the deployed code (version.php)."},
			"fpm_pool_size":   schema.Int64Attribute{Computed: true, MarkdownDescription: "PHP-FPM `pm.max_children` in effect."},
			"frontend_states": schema.MapAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "HAProxy's view of the node per front end."},
			"drift":           driftAttribute(),
			"timeouts":        timeouts.Attributes(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (m *backendModel) backend(ctx context.Context) (cluster.Backend, diag.Diagnostics) {
	b := cluster.Backend{
		Name: m.Name.ValueString(), Host: m.Host.host(), Weight: int(m.Weight.ValueInt64()), State: m.State.ValueString(),
		FPMMaxChildren: int(m.FPMMaxChildren.ValueInt64()), FPMChildMemoryMB: int(m.FPMChildMemoryMB.ValueInt64()),
	}
	var diags diag.Diagnostics
	if !m.ReadReplicas.IsNull() {
		diags.Append(m.ReadReplicas.ElementsAs(ctx, &b.ReadReplicas, false)...)
	}
	b.DrainTimeout, _ = time.ParseDuration(m.DrainTimeout.ValueString())
	return b, diags
}

func decodeCluster(conn types.String, diags *diag.Diagnostics) *cluster.Spec {
	s, err := cluster.Decode(conn.ValueString())
	if err != nil {
		diags.AddAttributeError(path.Root("cluster"), "Invalid cluster", err.Error()+": pass moodle_cluster.<name>.spec")
		return nil
	}
	return s
}

func (r *backendResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	planNoDrift(ctx, req.State, &resp.Plan, &resp.Diagnostics, map[string]attr.Value{
		"release": types.StringUnknown(), "code_version": types.StringUnknown(), "fpm_pool_size": types.Int64Unknown(),
		"frontend_states": types.MapUnknown(types.StringType),
	})
	if !req.Config.Raw.IsFullyKnown() {
		return
	}
	var m backendModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s := decodeCluster(m.Cluster, &resp.Diagnostics)
	if s == nil {
		return
	}
	b, diags := m.backend(ctx)
	resp.Diagnostics.Append(diags...)
	if err := s.ValidateBackend(b); err != nil {
		resp.Diagnostics.AddError("Invalid moodle_backend", err.Error())
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), s.Name+"/"+b.Name)...)
}

func (r *backendResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m backendModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Create(ctx, 30*time.Minute)
	resp.Diagnostics.Append(diags...)
	r.apply(ctx, timeout, &m, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *backendResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m backendModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Update(ctx, 30*time.Minute)
	resp.Diagnostics.Append(diags...)
	r.apply(ctx, timeout, &m, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *backendResource) apply(ctx context.Context, timeout time.Duration, m *backendModel, diags *diag.Diagnostics) {
	dial := r.dialer(diags)
	s := decodeCluster(m.Cluster, diags)
	b, d := m.backend(ctx)
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	st, err := cluster.ApplyBackend(ctx, dial, s, b, progress(ctx, "moodle_backend."+b.Name))
	m.ID = types.StringValue(s.Name + "/" + b.Name)
	m.setStatus(st, nil)
	if err != nil {
		diags.AddError("Configuring the web node failed", err.Error()+"\n\nFix the cause and apply again: the next apply resumes where this one stopped.")
	}
}

func (m *backendModel) setStatus(st cluster.BackendStatus, drift []string) {
	m.Release = types.StringValue(st.Release.ID)
	m.CodeVersion = types.StringValue(st.Release.Version)
	m.FPMPoolSize = types.Int64Value(int64(st.FPMMaxChildren))
	states := map[string]string{}
	for k, v := range st.FrontendStates {
		states[k] = v
	}
	m.FrontendStates = mapValue(states)
	m.Drift = stringList(drift)
}

func (r *backendResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if importedOnly(ctx, req.State, "cluster", &resp.Diagnostics) {
		return
	}
	var m backendModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	dial := r.dialer(&resp.Diagnostics)
	s := decodeCluster(m.Cluster, &resp.Diagnostics)
	b, diags := m.backend(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	st, drift, err := cluster.InspectBackend(ctx, dial, s, b)
	if err != nil {
		resp.Diagnostics.AddError("Reading the web node failed", err.Error())
		return
	}
	m.setStatus(st, drift)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *backendResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m backendModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Delete(ctx, 15*time.Minute)
	resp.Diagnostics.Append(diags...)
	dial := r.dialer(&resp.Diagnostics)
	s := decodeCluster(m.Cluster, &resp.Diagnostics)
	b, diags := m.backend(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	if err := cluster.RemoveBackend(ctx, dial, s, b, progress(ctx, "moodle_backend."+b.Name)); err != nil {
		resp.Diagnostics.AddError("Removing the web node failed", err.Error())
	}
}

// ImportState takes `<cluster>/<name>`; the configuration supplies the rest at the next plan.
func (r *backendResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	clusterName, name, ok := strings.Cut(req.ID, "/")
	if !ok || clusterName == "" || name == "" {
		resp.Diagnostics.AddError("Invalid import ID", "moodle_backend imports as <cluster name>/<backend name>, e.g. moodle/web1")
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
}
