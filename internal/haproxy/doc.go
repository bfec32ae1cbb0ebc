// Package haproxy wires the site into the front ends cloned from the haproxy role image (internal/roles,
// files/haproxy): the site's file /etc/haproxy/conf.d/10-site.cfg (backend "moodle" with the web servers, the
// TLS switch), the site's certificate in /etc/haproxy/certs/, and keepalived's virtual address shared by two
// front ends.
//
// Web servers register themselves one by one, possibly at the same time (one Terraform moodle_backend each):
// the site's desired state is one registry file on the front end (RegistryFile), read, changed and written
// under the host lock LockName; 10-site.cfg is always rendered from it, checked with `haproxy -c` before it
// is installed, and loaded with a hitless reload (the master re-executes, a new worker takes the listening
// sockets, the old one finishes its requests). A server's state lives in the configuration (drain: weight
// 0, maintenance: disabled), so a reload keeps it; the running HAProxy is then checked through its runtime
// API and put right where it differs (a server disabled by hand on the socket, a weight set by hand).
//
// Inspect and InspectVIP only read: they tell whether the files, the running HAProxy and keepalived agree
// with the registry, so that the provider can show drift; ConfigureSite, PutServer and ConfigureVIP repair it.
package haproxy
