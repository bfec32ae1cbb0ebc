<?php
// Managed by MOHD: this release's config.php. The site's configuration, with its secrets, is
// /etc/moodle/config.php (0640 root:www-data), shared by every release: this file loads it, then
// this release's Moodle. Edit neither: MOHD rewrites both.
require_once('/etc/moodle/config.php');
require_once(__DIR__ . '/lib/setup.php');
