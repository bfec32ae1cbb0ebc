// Package nfs wires moodledata, Moodle's shared data directory, for a MOHD site: on the NFS server (a host
// of the "nfs" role image, NFS-Ganesha exporting /srv/moodledata as /moodledata over NFSv3 and NFSv4) it
// narrows the export's read-write clients to the web nodes (ConfigureExport, InspectExport); on each web
// node (the "web" role image) it mounts the export on /var/www/moodledata with a systemd mount unit, or
// verifies shared storage the operator provides there (ConfigureMount, InspectMount); ProbeExport proves
// from a web node that the export is served to it without a kernel mount.
//
// Every Configure function is idempotent (a second run changes nothing and says so) and every Inspect or
// Probe function is read-only. Nothing here is secret.
package nfs
