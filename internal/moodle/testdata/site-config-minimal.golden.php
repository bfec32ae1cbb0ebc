<?php
// Managed by MOHD (moodle_backend): this site's Moodle configuration, loaded by every release's
// config.php. Do not edit: the next apply rewrites it, and a hand edit shows as drift.
unset($CFG);
global $CFG;
$CFG = new stdClass();

// The database: writes, locks and sessions on the primary; read-only queries on the replicas when
// there are any (Moodle falls back to the primary when none answers within connecttimeout).
$CFG->dbtype = 'mariadb';
$CFG->dblibrary = 'native';
$CFG->dbhost = 'db1';
$CFG->dbname = 'moodle';
$CFG->dbuser = 'moodle';
$CFG->dbpass = 'x';
$CFG->prefix = 'mdl_';
$CFG->dboptions = [
    'dbpersist' => false,
    'dbport' => 3306,
    'dbcollation' => 'utf8mb4_unicode_ci',
];

// The site's address, the same on every web node.
$CFG->wwwroot = 'http://10.0.0.5';
// Apache's mod_remoteip (role web) already put the client's address in REMOTE_ADDR, trusting
// X-Forwarded-For from the cluster network only. Moodle uses REMOTE_ADDR and never reads the headers
// again (what X-Forwarded-For still holds then comes from the client). 3 = skip HTTP_CLIENT_IP and
// HTTP_X_FORWARDED_FOR.
$CFG->getremoteaddrconf = 3;

// Files: moodledata on the shared NFS mount, the local cache on this node's own disk (never on NFS).
$CFG->dataroot = '/var/www/moodledata';
$CFG->localcachedir = '/var/cache/moodle';
// Directories Moodle creates in moodledata: for the web server's user and group only.
$CFG->directorypermissions = 02770;

// Sessions in Redis, with Moodle's session locking.
$CFG->session_handler_class = '\\core\\session\\redis';
$CFG->session_redis_host = 'redis1';
$CFG->session_redis_port = 6379;
$CFG->session_redis_database = 0;
$CFG->session_redis_acquire_lock_timeout = 120;
$CFG->session_redis_lock_expire = 7200;

// Locks (cron's task locks among them) in the database: one lock service for every node. File locks
// in moodledata would depend on NFS locking.
$CFG->lock_factory = '\\core\\lock\\mysql_lock_factory';

// The code is deployed by MOHD and read-only for the web server: no plugin installation or update from
// the web interface, no executable path set from it.
$CFG->disableupdateautodeploy = true;
$CFG->preventexecpath = true;

// Plugin settings forced here. logstore_standard's loglifetime (days; 0 keeps the log forever) is how
// long the standard log keeps events: its cleanup task deletes older ones.
$CFG->forced_plugin_settings = [
    'logstore_standard' => [
        'loglifetime' => 0,
    ],
];
