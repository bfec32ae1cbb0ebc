// Package mariadb wires the MariaDB servers of a MOHD site: hosts cloned from the db role's image
// (internal/roles/db.go) become the cluster's primary or its replicas, and the primary moves between them.
//
// What the image already has: MariaDB 10.11 with the binary log, GTIDs (gtid_strict_mode,
// log_slave_updates), durable commits, a server_id derived per host at boot, root logging in through the
// unix socket only, mariadb-backup, and the semi-sync plugins built in but off. What this package adds is
// site-specific: the option file /etc/mysql/mariadb.conf.d/70-mohd-site.cnf (private bind address,
// read_only, semi-sync), Moodle's database, the application and replication accounts, and replication.
//
// Every SQL statement runs as root over the local socket, on the mariadb client's standard input: nothing
// is ever on a command line. Passwords are stored and compared as mysql_native_password hashes (so the
// binary log carries no password); the replication password itself reaches a replica only inside CHANGE
// MASTER on stdin, and every secret is listed in Cmd.Secrets.
//
// # Durability of acknowledged commits
//
// With SemiSync the primary runs rpl_semi_sync_master_wait_point = AFTER_SYNC: a transaction is written
// and synced to the primary's binary log, then the primary waits until a replica reports that it has
// written the transaction to its relay log, and only then commits it in InnoDB and answers the client.
// So every commit a client saw succeed is in at least one replica's relay log before anyone could read it
// on the primary, and Failover applies a replica's whole relay log before promoting it: losing the primary
// loses no acknowledged commit, provided the promoted replica is one that acknowledged (with one replica it
// is; with several, Failover refuses a replica that is behind another). The limits: the replica
// acknowledges once the event is in its relay log file, not necessarily synced to its disk, so the primary
// and that replica failing at the same moment can still lose it; the relay log must survive until the
// failover, and it does not survive a restart of the replica (the role sets relay_log_recovery, which
// discards it at startup) nor a restart of replication with both threads stopped (GTID mode fetches again
// from gtid_slave_pos; Failover refuses such a replica); and after rpl_semi_sync_master_timeout without an
// acknowledgement the primary goes on asynchronously (InspectPrimary's SemiSyncActive turns false) until a
// replica catches up.
package mariadb
