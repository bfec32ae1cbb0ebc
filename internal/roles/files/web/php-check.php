<?php
// Managed by MOHD (role web): run by the role's checks, with the CLI and through the Moodle pool's socket
// (cgi-fcgi, never over HTTP: it is outside every web root). Prints "OK", or one problem per line.
$problems = [];
foreach ([{{range $i, $e := .Extensions}}{{if $i}}, {{end}}'{{$e}}'{{end}}] as $ext) {
    if (!extension_loaded($ext)) {
        $problems[] = "extension $ext is not loaded";
    }
}
$exact = [
    'opcache.revalidate_freq' => '60',
    'opcache.use_cwd' => '1',
    'opcache.validate_timestamps' => '1',
    'opcache.save_comments' => '1',
    'opcache.enable_file_override' => '0',
    'expose_php' => '0',
];
foreach ($exact as $key => $want) {
    $got = (string) ini_get($key);
    if ($got === '') {
        $got = '0';
    }
    if ($got !== $want) {
        $problems[] = "$key is $got, want $want";
    }
}
$atLeast = ['opcache.memory_consumption' => 128, 'opcache.max_accelerated_files' => 10000, 'max_input_vars' => 5000];
foreach ($atLeast as $key => $min) {
    if ((int) ini_get($key) < $min) {
        $problems[] = "$key is " . ini_get($key) . ", want at least $min";
    }
}
// OPcache caches scripts in PHP-FPM; the CLI runs without it, as PHP's default (opcache.enable_cli=0).
if (PHP_SAPI !== 'cli' && (!function_exists('opcache_get_status') || opcache_get_status(false) === false)) {
    $problems[] = 'OPcache is not running';
}
echo $problems ? implode("\n", $problems) : 'OK', "\n";
