// Package provider is the Terraform glue of MOHD: schemas, plan-time validation and the mapping of Terraform
// values to the domain packages in internal/. It holds no domain logic of its own.
package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/mohd-dev/mohd/internal/sshx"
)

var _ provider.Provider = (*moodleProvider)(nil)

type moodleProvider struct {
	version string
}

// New returns the provider factory for providerserver.Serve and for tests.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &moodleProvider{version: version} }
}

type providerModel struct {
	SSH *sshModel `tfsdk:"ssh"`
}

func (p *moodleProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "moodle"
	resp.Version = p.version
}

func (p *moodleProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "MOHD wires hosts cloned from its role images into a highly-available Moodle. " +
			"Every change is made over SSH with verified host keys; no host is contacted while the provider is configured.",
		Blocks: map[string]schema.Block{
			"ssh": sshBlock(),
		},
	}
}

// providerData is what resources and data sources receive: the connection pool, which dials lazily. pool
// is nil while the provider's configuration holds values that are unknown until apply.
type providerData struct {
	pool *sshx.Pool
}

func (p *moodleProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !req.Config.Raw.IsFullyKnown() {
		// Settings that depend on values known only after apply: plan what can be planned and dial nothing.
		tflog.Debug(ctx, "moodle provider configuration not fully known yet")
		data := &providerData{}
		resp.DataSourceData = data
		resp.ResourceData = data
		return
	}
	sshCfg, diags := cfg.SSH.toConfig(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	sshCfg.Logger = tflogLogger{ctx: ctx}
	pool, err := sshx.NewPool(sshCfg)
	if err != nil {
		resp.Diagnostics.AddAttributeError(sshPath, "Invalid SSH configuration", err.Error())
		return
	}
	tflog.Debug(ctx, "moodle provider configured", map[string]any{"ssh_user": sshCfg.User})
	data := &providerData{pool: pool}
	resp.DataSourceData = data
	resp.ResourceData = data
}

func (p *moodleProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newClusterResource, newBackendResource, newReplicaResource}
}

func (p *moodleProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{newHostDataSource}
}

// configured extracts providerData in a resource's or data source's Configure.
func configured(data any) (*providerData, bool) {
	if data == nil {
		return nil, false
	}
	d, ok := data.(*providerData)
	return d, ok
}
