package validate

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

var hostnameRE = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$`)

func checkHost(s string) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if strings.Contains(s, "://") {
		return fmt.Errorf("%q has a scheme", s)
	}
	if net.ParseIP(s) != nil {
		return nil
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return fmt.Errorf("%q has a port: use the port attribute", s)
	}
	if len(s) > 253 || !hostnameRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid host name", s)
	}
	return nil
}
