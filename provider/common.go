package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/mohd-dev/mohd/internal/cluster"
	"github.com/mohd-dev/mohd/internal/remote"
	"github.com/mohd-dev/mohd/internal/sshx"
	"github.com/mohd-dev/mohd/provider/internal/validate"
)

// targetModel is a host reached over SSH, in every resource.
type targetModel struct {
	Address types.String `tfsdk:"address"`
	Port    types.Int64  `tfsdk:"port"`
	HostKey types.String `tfsdk:"host_key"`
}

func (h targetModel) host() cluster.Host {
	return cluster.Host{Address: h.Address.ValueString(), Port: int(h.Port.ValueInt64()), HostKey: h.HostKey.ValueString()}
}

func hostAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"address": schema.StringAttribute{Required: true, Validators: []validator.String{validate.Host()},
			MarkdownDescription: "The host's private address: MOHD connects to it over SSH and the cluster's members reach it there."},
		"port": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(22),
			Validators: []validator.Int64{int64validator.Between(1, 65535)}, MarkdownDescription: "SSH port."},
		"host_key": schema.StringAttribute{Optional: true, Validators: []validator.String{validate.PublicKey()},
			MarkdownDescription: "The host's SSH public key (authorized_keys format), verified on every connection. " +
				"Without it the provider's `ssh.known_hosts` must know the host."},
	}
}

func hostAttribute(desc string) schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{Required: true, MarkdownDescription: desc, Attributes: hostAttributes()}
}

// driftAttribute lists what Read found different on the hosts. A non-empty list plans an update (to the empty
// list), which is how a hand-edited file or a stopped service shows in `terraform plan`; apply repairs it.
func driftAttribute() schema.ListAttribute {
	return schema.ListAttribute{Computed: true, ElementType: types.StringType,
		MarkdownDescription: "What the last read found different from the configuration on the hosts (a file edited by hand, " +
			"a stopped service, a server disabled in HAProxy...). A non-empty list plans an update that repairs it; empty after apply."}
}

// planNoDrift plans the empty drift list: the same as the state's when Read found nothing (no diff), an
// update that repairs the hosts when it found something. The update's other computed values (given as
// unknown values by path) are then known only after apply.
func planNoDrift(ctx context.Context, state tfsdk.State, plan *tfsdk.Plan, diags *diag.Diagnostics, recomputed map[string]attr.Value) {
	if plan.Raw.IsNull() {
		return
	}
	diags.Append(plan.SetAttribute(ctx, path.Root("drift"), types.ListValueMust(types.StringType, []attr.Value{}))...)
	if state.Raw.IsNull() {
		return
	}
	var drift types.List
	diags.Append(state.GetAttribute(ctx, path.Root("drift"), &drift)...)
	if len(drift.Elements()) == 0 {
		return
	}
	for name, unknown := range recomputed {
		diags.Append(plan.SetAttribute(ctx, path.Root(name), unknown)...)
	}
}

func stringList(items []string) types.List {
	vals := make([]attr.Value, 0, len(items))
	for _, s := range items {
		vals = append(vals, types.StringValue(s))
	}
	return types.ListValueMust(types.StringType, vals)
}

// useState keeps a computed attribute's state value in plans (it changes only when the resource is updated).
func useState() []planmodifier.String {
	return []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
}

// resourceBase is what every resource shares: the provider's SSH pool.
type resourceBase struct {
	data *providerData
}

func (r *resourceBase) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if req.ProviderData == nil {
		return
	}
	d, ok := configured(req.ProviderData)
	if !ok {
		resp.Diagnostics.AddError("Unexpected provider data", fmt.Sprintf("got %T", req.ProviderData))
		return
	}
	r.data = d
}

// dialer gives the domain code its hosts, or says why there are none yet.
func (r *resourceBase) dialer(diags *diag.Diagnostics) cluster.Dialer {
	if r.data == nil || r.data.pool == nil {
		diags.AddError("Provider configuration not known yet",
			"The moodle provider's ssh settings depend on values known only after apply; MOHD cannot reach hosts until they are known.")
		return nil
	}
	pool := r.data.pool
	return func(h cluster.Host) (remote.Host, error) {
		return pool.Host(sshx.Target{Host: h.Address, Port: h.Port, HostKey: h.HostKey})
	}
}

// progress sends the domain code's progress lines to Terraform's log.
func progress(ctx context.Context, resource string) cluster.Progress {
	return func(format string, args ...any) {
		tflog.Info(ctx, fmt.Sprintf(format, args...), map[string]any{"resource": resource})
	}
}

// withTimeout applies a resource's timeout for one operation.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// replaceUnlessImported replaces the resource when its host changes, but not when an import left the host
// out of the state (the configuration then names the host the resource already is).
func replaceUnlessImported() planmodifier.Object {
	return objectplanmodifier.RequiresReplaceIf(func(_ context.Context, req planmodifier.ObjectRequest, resp *objectplanmodifier.RequiresReplaceIfFuncResponse) {
		resp.RequiresReplace = !req.StateValue.IsNull()
	}, "A different host is a different node: the resource is replaced.", "A different host is a different node: the resource is replaced.")
}

func mapValue(m map[string]string) types.Map {
	vals := make(map[string]attr.Value, len(m))
	for k, v := range m {
		vals[k] = types.StringValue(v)
	}
	return types.MapValueMust(types.StringType, vals)
}

// importedOnly reports whether the state holds only what an import set (attr, which every apply sets, is
// null): there is no configuration to compare the hosts with yet, so Read keeps the state; the plan then shows
// the configuration, and the apply converges the hosts to it (changing nothing that already matches).
func importedOnly(ctx context.Context, state tfsdk.State, attr string, diags *diag.Diagnostics) bool {
	var v types.String
	diags.Append(state.GetAttribute(ctx, path.Root(attr), &v)...)
	return v.IsNull()
}
