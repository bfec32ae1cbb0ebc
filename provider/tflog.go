package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// tflogLogger maps the transport's logger onto tflog. Entries arrive already redacted by the transport.
type tflogLogger struct{ ctx context.Context }

func (l tflogLogger) Debug(msg string, fields map[string]any) { tflog.Debug(l.ctx, msg, fields) }
func (l tflogLogger) Info(msg string, fields map[string]any)  { tflog.Info(l.ctx, msg, fields) }
func (l tflogLogger) Warn(msg string, fields map[string]any)  { tflog.Warn(l.ctx, msg, fields) }
