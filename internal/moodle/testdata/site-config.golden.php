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
$CFG->dbhost = '10.20.0.31';
$CFG->dbname = 'moodle';
$CFG->dbuser = 'moodle';
$CFG->dbpass = 'p\'a\\ss"$x{y}';
$CFG->prefix = 'mdl_';
$CFG->dboptions = [
    'dbpersist' => false,
    'dbport' => 3306,
    'dbcollation' => 'utf8mb4_unicode_ci',
    'readonly' => [
        'instance' => [
            '10.20.0.32',
            ['dbhost' => 'db3.example.edu', 'dbport' => 3307],
        ],
        'connecttimeout' => 2,
        'latency' => 1,
    ],
];

// The site's address, the same on every web node.
$CFG->wwwroot = 'https://moodle.example.edu';
// TLS ends at the front ends, which talk HTTP to this node.
$CFG->sslproxy = true;
// Apache's mod_remoteip (role web) already put the client's address in REMOTE_ADDR, trusting
// X-Forwarded-For from the cluster network only. Moodle uses REMOTE_ADDR and never reads the headers
// again (what X-Forwarded-For still holds then comes from the client). 3 = skip HTTP_CLIENT_IP and
// HTTP_X_FORWARDED_FOR.
$CFG->getremoteaddrconf = 3;
$CFG->reverseproxyignore = '10.20.0.11,10.20.0.0/24';

// Files: moodledata on the shared NFS mount, the local cache on this node's own disk (never on NFS).
$CFG->dataroot = '/var/www/moodledata';
$CFG->localcachedir = '/var/cache/moodle';
// Directories Moodle creates in moodledata: for the web server's user and group only.
$CFG->directorypermissions = 02770;

// Sessions in Redis, with Moodle's session locking.
$CFG->session_handler_class = '\\core\\session\\redis';
$CFG->session_redis_host = '10.20.0.41';
$CFG->session_redis_port = 6379;
$CFG->session_redis_auth = 'r3d\'is\\';
$CFG->session_redis_database = 2;
$CFG->session_redis_prefix = 'mdl_sess_';
$CFG->session_redis_acquire_lock_timeout = 120;
$CFG->session_redis_acquire_lock_retry = 150;
$CFG->session_redis_lock_expire = 7200;

// Locks (cron's task locks among them) in the database: one lock service for every node. File locks
// in moodledata would depend on NFS locking.
$CFG->lock_factory = '\\core\\lock\\mysql_lock_factory';

// The code is deployed by MOHD and read-only for the web server: no plugin installation or update from
// the web interface, no executable path set from it.
$CFG->disableupdateautodeploy = true;
$CFG->preventexecpath = true;

// The site's own settings, forced here (the admin pages show them as set in config.php).
$CFG->enable_read_only_sessions = true;
$CFG->noemailever = false;
$CFG->pathtophp = '0755';
$CFG->sessiontimeout = 7200;
$CFG->supportname = 'IT\'s help desk';
$CFG->theme = 'boost';

// Plugin settings forced here. logstore_standard's loglifetime (days; 0 keeps the log forever) is how
// long the standard log keeps events: its cleanup task deletes older ones.
$CFG->forced_plugin_settings = [
    'auth_ldap' => [
        'host_url' => 'ldaps://ldap.example.edu',
    ],
    'logstore_standard' => [
        'logguests' => 0,
        'loglifetime' => 365,
    ],
];
