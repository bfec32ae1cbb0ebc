-- Managed by MOHD (role db): the accounts every MOHD database has, as on a freshly initialized data
-- directory (mohd-mariadb-prestart runs it through mariadb-install-db). Apply converges running servers to
-- the same state with the same statements. Never binlogged: each server's own accounts are local, not
-- transactions a replica would replay (nor errant GTIDs on a replica).
SET SESSION sql_log_bin = 0;
-- Loads the grant tables when the server bootstraps with --skip-grant-tables (mariadb-install-db), so that
-- the account statements below work there too.
FLUSH PRIVILEGES;
{{range .AccountStatements}}{{.}};
{{end -}}
