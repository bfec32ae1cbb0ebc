package provider

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/mohd-dev/mohd/internal/cluster"
)

var (
	_ resource.ResourceWithConfigure   = (*replicaResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*replicaResource)(nil)
	_ resource.ResourceWithImportState = (*replicaResource)(nil)
)

type replicaResource struct{ resourceBase }

func newReplicaResource() resource.Resource { return &replicaResource{} }

type replicaModel struct {
	ID            types.String   `tfsdk:"id"`
	Cluster       types.String   `tfsdk:"cluster"`
	Name          types.String   `tfsdk:"name"`
	Host          targetModel    `tfsdk:"host"`
	UseForReads   types.Bool     `tfsdk:"use_for_reads"`
	IsPrimary     types.Bool     `tfsdk:"is_primary"`
	IORunning     types.String   `tfsdk:"io_running"`
	SQLRunning    types.String   `tfsdk:"sql_running"`
	SecondsBehind types.Int64    `tfsdk:"seconds_behind_primary"`
	GTIDPosition  types.String   `tfsdk:"gtid_position"`
	LastError     types.String   `tfsdk:"last_error"`
	Drift         types.List     `tfsdk:"drift"`
	Timeouts      timeouts.Value `tfsdk:"timeouts"`
}

func (r *replicaResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_db_replica"
}

func (r *replicaResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	host := hostAttribute("The replica (role `db`). After a switchover that made this host the primary, point this " +
		"resource at the old primary's host, which the switchover turned into a replica: nothing is copied again.")
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A MariaDB replica of a `moodle_cluster`'s primary: seeded with a consistent copy of the primary " +
			"(mariabackup streamed over SSH), then GTID replication (`MASTER_USE_GTID=slave_pos`), semi-synchronous so that no " +
			"acknowledged write is lost, `read_only=ON`. Its replication state is read on every plan. Deleting it stops " +
			"replication cleanly and leaves the server and its data in place.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, PlanModifiers: useState(), MarkdownDescription: "`<cluster>/<name>`."},
			"cluster": schema.StringAttribute{Required: true, Sensitive: true,
				MarkdownDescription: "The cluster's `spec` (`moodle_cluster.<name>.spec`)."},
			"name": schema.StringAttribute{Required: true, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				MarkdownDescription: "Name of the replica.",
				Validators:          []validator.String{stringvalidator.RegexMatches(nameRE, "must be 1-32 letters, digits, '-' or '_'")}},
			"host": host,
			"use_for_reads": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
				MarkdownDescription: "Whether Moodle sends read-only queries here: give the `host.address` of the replicas that have it " +
					"to each `moodle_backend`'s `read_replicas` (the `moodle-cluster` module does)."},
			"is_primary":             schema.BoolAttribute{Computed: true, MarkdownDescription: "The host is the cluster's primary now (after a switchover)."},
			"io_running":             computed("Replication IO thread (`Yes`, `No`, `Connecting`)."),
			"sql_running":            computed("Replication SQL thread."),
			"seconds_behind_primary": schema.Int64Attribute{Computed: true, MarkdownDescription: "Replication lag; null while a thread is stopped."},
			"gtid_position":          computed("`gtid_slave_pos`: the last transaction applied."),
			"last_error":             computed("Last IO or SQL error of replication."),
			"drift":                  driftAttribute(),
			"timeouts":               timeouts.Attributes(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (m *replicaModel) replica() cluster.Replica {
	return cluster.Replica{Name: m.Name.ValueString(), Host: m.Host.host()}
}

func (m *replicaModel) setStatus(st cluster.ReplicaStatus, drift []string) {
	m.IsPrimary = types.BoolValue(st.IsPrimary)
	m.IORunning = types.StringValue(st.IORunning)
	m.SQLRunning = types.StringValue(st.SQLRunning)
	m.SecondsBehind = types.Int64PointerValue(st.SecondsBehind)
	m.GTIDPosition = types.StringValue(st.GTIDSlavePos)
	m.LastError = types.StringValue(strings.TrimSpace(st.LastIOError + " " + st.LastSQLError))
	m.Drift = stringList(drift)
}

func (r *replicaResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	planNoDrift(ctx, req.State, &resp.Plan, &resp.Diagnostics, map[string]attr.Value{
		"is_primary": types.BoolUnknown(), "io_running": types.StringUnknown(), "sql_running": types.StringUnknown(),
		"seconds_behind_primary": types.Int64Unknown(), "gtid_position": types.StringUnknown(), "last_error": types.StringUnknown(),
	})
	if !req.Config.Raw.IsFullyKnown() {
		return
	}
	var m replicaModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s := decodeCluster(m.Cluster, &resp.Diagnostics)
	if s == nil {
		return
	}
	if err := s.ValidateReplica(m.replica()); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("host"), "Invalid moodle_db_replica", err.Error())
	}
	if req.State.Raw.IsNull() && s.Database.Primary.Same(m.replica().Host) {
		resp.Diagnostics.AddAttributeError(path.Root("host"), "Invalid moodle_db_replica",
			"the replica's host is the cluster's database primary: a replica needs a db host of its own")
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), s.Name+"/"+m.Name.ValueString())...)
}

func (r *replicaResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m replicaModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Create(ctx, 60*time.Minute)
	resp.Diagnostics.Append(diags...)
	r.apply(ctx, timeout, &m, true, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *replicaResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m replicaModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Update(ctx, 60*time.Minute)
	resp.Diagnostics.Append(diags...)
	r.apply(ctx, timeout, &m, false, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *replicaResource) apply(ctx context.Context, timeout time.Duration, m *replicaModel, create bool, diags *diag.Diagnostics) {
	dial := r.dialer(diags)
	s := decodeCluster(m.Cluster, diags)
	if diags.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	rep := m.replica()
	st, err := cluster.ApplyReplica(ctx, dial, s, rep, create, progress(ctx, "moodle_db_replica."+rep.Name))
	m.ID = types.StringValue(s.Name + "/" + rep.Name)
	m.setStatus(st, nil)
	if err != nil {
		diags.AddError("Configuring the database replica failed", err.Error()+"\n\nFix the cause and apply again: a replica that was not seeded completely is seeded again.")
	}
}

func (r *replicaResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if importedOnly(ctx, req.State, "cluster", &resp.Diagnostics) {
		return
	}
	var m replicaModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	dial := r.dialer(&resp.Diagnostics)
	s := decodeCluster(m.Cluster, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	st, drift, err := cluster.InspectReplica(ctx, dial, s, m.replica())
	if err != nil {
		resp.Diagnostics.AddError("Reading the database replica failed", err.Error())
		return
	}
	m.setStatus(st, drift)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *replicaResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m replicaModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Delete(ctx, 10*time.Minute)
	resp.Diagnostics.Append(diags...)
	dial := r.dialer(&resp.Diagnostics)
	s := decodeCluster(m.Cluster, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	if err := cluster.RemoveReplica(ctx, dial, s, m.replica()); err != nil {
		resp.Diagnostics.AddError("Removing the database replica failed", err.Error())
	}
}

// ImportState takes `<cluster>/<name>`.
func (r *replicaResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	clusterName, name, ok := strings.Cut(req.ID, "/")
	if !ok || clusterName == "" || name == "" {
		resp.Diagnostics.AddError("Invalid import ID", "moodle_db_replica imports as <cluster name>/<replica name>, e.g. moodle/db2")
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
}
