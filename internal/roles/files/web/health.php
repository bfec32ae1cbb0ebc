<?php
// Managed by MOHD (role web): the health check HAProxy calls on this web node, at /mohd-health.
//
// It is standalone on purpose: it never includes Moodle's config.php, so a check never starts a Moodle
// session (each request without a cookie would otherwise add a session and a row in mdl_sessions).
//   200 "OK"                           PHP-FPM runs this script and the database answers SELECT 1
//   200 "OK (no database configured)"  PHP-FPM runs this script; {{.HealthIni}} does not exist yet
//   503 "FAIL ..."                     the database is unreachable or refuses (connect timeout 2 s)
//
// {{.HealthIni}} (0640 root:www-data) is written by the provider once the database exists. Values are
// read raw: inside double quotes everything is literal (';', '#', '$'), and no value may contain '"'.
//   dbhost = "10.20.0.31"
//   dbport = 3306           ; optional
//   dbname = "moodle"
//   dbuser = "mohd_health"  ; any privilege on dbname will do (SELECT): the check runs SELECT 1
//   dbpass = "..."
declare(strict_types=1);

const MOHD_HEALTH_INI = '{{.HealthIni}}';

header('Content-Type: text/plain; charset=utf-8');
header('Cache-Control: no-store');

function mohd_health_reply(int $code, string $message): never
{
    http_response_code($code);
    echo $message, "\n";
    exit;
}

if (!file_exists(MOHD_HEALTH_INI)) {
    mohd_health_reply(200, 'OK (no database configured)');
}
$cfg = @parse_ini_file(MOHD_HEALTH_INI, false, INI_SCANNER_RAW);
if (!is_array($cfg)) {
    mohd_health_reply(503, 'FAIL: ' . MOHD_HEALTH_INI . ' is unreadable');
}
foreach (['dbhost', 'dbname', 'dbuser', 'dbpass'] as $key) {
    if (!isset($cfg[$key]) || ($key !== 'dbpass' && $cfg[$key] === '')) {
        mohd_health_reply(503, 'FAIL: ' . MOHD_HEALTH_INI . " has no $key");
    }
}
$port = isset($cfg['dbport']) && ctype_digit($cfg['dbport']) ? (int) $cfg['dbport'] : 3306;

mysqli_report(MYSQLI_REPORT_OFF);
$db = mysqli_init();
if ($db === false) {
    mohd_health_reply(503, 'FAIL: mysqli_init failed');
}
$db->options(MYSQLI_OPT_CONNECT_TIMEOUT, 2);
$db->options(MYSQLI_OPT_READ_TIMEOUT, 2);
if (!@$db->real_connect($cfg['dbhost'], $cfg['dbuser'], $cfg['dbpass'], $cfg['dbname'], $port)) {
    mohd_health_reply(503, sprintf('FAIL database: connect error %d: %s', $db->connect_errno, $db->connect_error));
}
$result = $db->query('SELECT 1');
$row = $result instanceof mysqli_result ? $result->fetch_row() : null;
$db->close();
if ($row === null || (string) $row[0] !== '1') {
    mohd_health_reply(503, 'FAIL database: SELECT 1 failed');
}
mohd_health_reply(200, 'OK');
