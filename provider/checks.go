package provider

import (
	"context"
	"fmt"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/mohd-dev/mohd/internal/moodle"
)

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	identRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)
	emailRE = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// settingsKeys refuses config.php keys Moodle does not know, and those MOHD sets itself, at plan time.
type settingsKeys struct{}

func (settingsKeys) Description(context.Context) string {
	return "keys must be $CFG settings Moodle knows and MOHD does not set itself"
}
func (v settingsKeys) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (settingsKeys) ValidateMap(_ context.Context, req validator.MapRequest, resp *validator.MapResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	for k := range req.ConfigValue.Elements() {
		if err := moodle.KnownSetting(k); err != nil {
			resp.Diagnostics.AddAttributeError(req.Path.AtMapKey(k), "Unknown or reserved config.php setting", fmt.Sprint(err))
		}
	}
}
