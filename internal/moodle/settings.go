package moodle

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// managedSettings are the config.php settings MOHD writes itself, with where their value comes from. A
// site cannot set them through Site.Settings: they would contradict the cluster's design.
var managedSettings = map[string]string{ //nolint:gosec // why each setting is MOHD's, no credentials
	"dbtype":                             "MOHD always uses MariaDB (dbtype mariadb)",
	"dblibrary":                          "MOHD always uses the native driver",
	"dbhost":                             "set by MOHD from the database settings (the primary's host)",
	"dbname":                             "set by MOHD from the database settings",
	"dbuser":                             "set by MOHD from the database settings",
	"dbpass":                             "set by MOHD from the database settings",
	"prefix":                             "set by MOHD from the database settings (table prefix)",
	"dboptions":                          "set by MOHD from the database settings (port, collation, read replicas)",
	"wwwroot":                            "set by MOHD from the site's wwwroot",
	"dataroot":                           "MOHD keeps moodledata on the shared NFS mount " + DataRoot,
	"localcachedir":                      "MOHD keeps the local cache on each node's own disk, " + LocalCacheDir,
	"directorypermissions":               "set by MOHD: moodledata is shared by the web server's user and group only (02770)",
	"sslproxy":                           "set by MOHD from the site's TLS-at-the-front-ends setting (ssl proxy)",
	"getremoteaddrconf":                  "set by MOHD: Apache's mod_remoteip gives PHP the client's address, Moodle must not read X-Forwarded-For again",
	"reverseproxyignore":                 "set by MOHD from the trusted proxies",
	"session_handler_class":              "MOHD keeps sessions in Redis (\\core\\session\\redis)",
	"session_redis_host":                 "set by MOHD from the Redis settings (host)",
	"session_redis_port":                 "set by MOHD from the Redis settings (port)",
	"session_redis_auth":                 "set by MOHD from the Redis settings (password)",
	"session_redis_database":             "set by MOHD from the Redis settings (database)",
	"session_redis_prefix":               "set by MOHD from the Redis settings (prefix)",
	"session_redis_acquire_lock_timeout": "set by MOHD from the Redis settings (lock timeout)",
	"session_redis_lock_expire":          "set by MOHD from the Redis settings (lock expire)",
	"session_redis_acquire_lock_retry":   "set by MOHD from the Redis settings (lock retry)",
	"lock_factory":                       "MOHD uses database locks (\\core\\lock\\mysql_lock_factory): file locks on NFS are not safe on a cluster",
	"disableupdateautodeploy":            "set by MOHD: the code is deployed by MOHD and read-only, plugins are never installed from the web interface",
	"preventexecpath":                    "set by MOHD: executable paths are never set from the web interface",
	"forced_plugin_settings":             "written by MOHD from the settings named \"component/name\" (use those)",
	"logstore_standard/loglifetime":      "set by MOHD from the log lifetime (days)",
	"admin":                              "MOHD runs Moodle's admin/cli scripts: the admin directory cannot be renamed",
	"dirroot":                            "computed by Moodle from the release's location",
	"libdir":                             "computed by Moodle from the release's location",
	"config_php_settings":                "computed by Moodle",
	"version":                            "kept in the database by Moodle (upgrade.php), never in config.php",
	"release":                            "kept in the database by Moodle (upgrade.php), never in config.php",
	"branch":                             "kept in the database by Moodle (upgrade.php), never in config.php",
	"siteidentifier":                     "kept in the database by Moodle, never in config.php",
	"rolesactive":                        "kept in the database by Moodle, never in config.php",
}

// arraySettings need a PHP array, which Site.Settings (strings) cannot express.
var arraySettings = []string{
	"session_redis_encrypt", "xsendfilealiases", "themeorder", "customfiletypes", "yuiloginclude", "yuilogexclude",
	"scheduled_tasks", "behat_config", "behat_profiles", "behat_extraallowedsettings", "behat_parallel_run",
	"behat_additionalfeatures", "phpunit_extra_drivers",
}

// knownSettings are the core settings a config.php may set: those Moodle 4.5's config-dist.php and
// lib/setup.php read, and the admin settings sites commonly force in config.php (config-dist.php section
// 8: "Core settings are specified directly via assignment to $CFG variable").
var knownSettings = []string{
	// config-dist.php and lib/setup.php.
	"mnetkeylifetime", "extendedusernamechars", "includeuserpasswordsinbackup", "disableusercreationonrestore",
	"keeptempdirectoriesonbackup", "forcedifferentsitecheckingusersonrestore", "usezipbackups",
	"disablestatsprocessing", "admineditalways", "defaultblocks_override", "defaultblocks_site",
	"defaultblocks_social", "defaultblocks_topics", "defaultblocks_weeks", "defaultblocks", "moodlepageclass",
	"moodlepageclassfile", "blockmanagerclass", "blockmanagerclassfile", "filelifetime", "xsendfile",
	"yuislasharguments", "session_update_timemodified_frequency", "tracksessionip", "handlebounces",
	"minbounces", "bounceratio", "mailprefix", "maildomain", "reverseproxy", "nofixday", "preferlinegraphs",
	"urlrewriteclass", "customscripts", "earlyprofilingenabled", "profilingincluded", "profilingexcluded",
	"profilingautofrec", "profilingallowme", "profilingallowall", "profilinglifetime",
	"disableprofilingtodatabase", "forcefirstname", "forcelastname", "apacheloguser", "headerloguser",
	"emailconnectionerrorsto", "themedir", "tempdir", "cachedir", "backuptempdir", "localrequestdir",
	"preventfilelocking", "file_lock_root", "lang", "extramemorylimit", "altcacheconfigpath",
	"alternative_cache_factory_class", "alternative_component_cache", "alternative_file_system_class",
	"disableupdatenotifications", "disabledevlibdirscheck", "preventscheduledtaskchanges", "svgicons",
	"noreplyuserid", "supportuserid", "task_log_class", "upgradekey", "conversionattemptlimit",
	"pdfexportfont", "keepmessagingallusersenabled", "disablelogintoken", "expectedcronfrequency",
	"debugsessionlock", "uninstallclionly", "questionbankcolumns", "forumpostcountchunksize",
	"showcampaigncontent", "showservicesandsupportcontent", "site_is_public", "enableuserfeedback",
	"enable_read_only_sessions", "session_redis_acquire_lock_warn", "session_redis_serializer_use_igbinary",
	"session_redis_compressor", "debug", "debugdisplay", "debugusers", "themedesignermode", "debugimap",
	"debugsmtp", "cachejs", "cachetemplates", "yuiloglevel", "langstringcache", "noemailever",
	"divertallemailsto", "divertallemailsexcept", "xmldbdisablecommentchecking", "upgradeshowsql",
	"showcronsql", "showcrondebugging", "passwordsaltmain", "tool_generator_users_password", "pathtogs",
	"pathtophp", "pathtodu", "aspellpath", "pathtodot", "pathtounoconv", "pathtopdftoppm", "pathtopython",
	"umaskpermissions", "filepermissions", "routerconfigured",
	// Cron and tasks.
	"cron_enabled", "cronclionly", "cronremotepassword", "cron_keepalive", "task_scheduled_concurrency_limit",
	"task_adhoc_concurrency_limit", "task_scheduled_max_runtime", "task_adhoc_max_runtime", "task_logmode",
	"task_logretention", "task_logretainruns", "task_logtostdout",
	// Site, appearance, language, location.
	"theme", "timezone", "forcetimezone", "country", "defaultcity", "langmenu", "langlist", "langcache",
	"autolang", "autolangusercreation", "docroot", "doclang", "doctonewwindow", "allowthemechangeonurl",
	"allowuserthemes", "allowcoursethemes", "allowcategorythemes", "allowcohortthemes",
	"enabledevicedetection", "additionalhtmlhead", "additionalhtmltopofbody", "additionalhtmlfooter",
	"defaulthomepage", "allowguestmymoodle", "navshowcategories", "navshowmycoursecategories",
	"fullnamedisplay", "alternativefullnameformat", "maxusersperpage", "frontpage", "frontpageloggedin",
	"maxcategorydepth", "coursecontact", "courselistshortnames", "coursesperpage", "courseswithsummarieslimit",
	"courseoverviewfileslimit", "courseoverviewfilesext", "maintenance_message", "sitepolicy",
	"sitepolicyguest", "sitepolicyhandler", "supportemail", "supportname", "supportpage",
	"supportavailability", "servicespage", "geoip2file", "googlemapkey3", "slasharguments",
	"formatstringstriptags", "allowobjectembed", "enabletrusttext", "cachetext", "strictformsrequired",
	"maxeditingtime", "gradepointmax", "gradepointdefault", "profileroles", "h5plibraryhandler",
	// Features.
	"enablewebservices", "enablemobilewebservice", "enablewsdocumentation", "enablestats", "enableblogs",
	"useblogassociations", "bloglevel", "enablebadges", "enablecompletion", "enableavailability",
	"enableanalytics", "enableglobalsearch", "searchengine", "searchindexwhendisabled", "enablenotes",
	"enableportfolios", "enablerssfeeds", "enableplagiarism", "enablecourserequests", "enablegravatar",
	"enableoutcomes", "enablecomments", "enabletgzbackups", "enablecourserelativedates", "usetags",
	"enablecustomreports", "customreportslimit", "customreportsliveediting", "messaging",
	"messagingallusers", "messaginghidereadnotifications", "messagingdeletereadnotificationsdelay",
	"messagingdeleteallnotificationsdelay", "enableonlineusers", "enablemoodlenet", "enablesharingtomoodlenet",
	"enablecommunicationsubsystem", "enableaiplacements", "enableaiproviders", "enablepdfexportfont",
	"enableaccessibilitytools", "enablecoursepublishing", "enableweeklyemails",
	// Users, login and security.
	"forcelogin", "forceloginforprofiles", "forceloginforprofileimage", "opentowebcrawlers",
	"allowframembedding", "cookiesecure", "cookiehttponly", "sessiontimeout", "sessiontimeoutwarning",
	"sessioncookie", "sessioncookiepath", "sessioncookiedomain", "registerauth", "auth", "authloginviaemail",
	"allowaccountssameemail", "authpreventaccountcreation", "loginpageautofocus", "guestloginbutton",
	"autologinguests", "alternateloginurl", "forgottenpasswordurl", "passwordpolicy", "minpasswordlength",
	"minpassworddigits", "minpasswordlower", "minpasswordupper", "minpasswordnonalphanum",
	"maxconsecutiveidentchars", "passwordreuselimit", "passwordchangelogout", "passwordchangetokendeletion",
	"pwresettime", "groupenrolmentkeypolicy", "lockoutthreshold", "lockoutwindow", "lockoutduration",
	"deleteunconfirmed", "deleteincompleteusers", "disableuserimages", "emailchangeconfirmation",
	"allowemailaddresses", "denyemailaddresses", "verifychangedemail", "recaptchapublickey",
	"recaptchaprivatekey", "enableloginrecaptcha", "enableforgotpasswordrecaptcha", "userquota", "maxbytes",
	"displayloginfailures", "notifyloginfailures", "notifyloginthreshold", "limitconcurrentlogins",
	"curlsecurityblockedhosts", "curlsecurityallowedport", "curltimeoutkbitrate", "allowedemaildomains",
	"tempdatafoldercleanup", "filescleanupperiod", "profilingenabled", "perfdebug", "debugpageinfo",
	"debugvalidators", "debugstringids", "debugtemplateinfo", "allowbeforeblock", "allowstealth",
	"allowindexing", "hiddenuserfields", "showuseridentity",
	// Mail.
	"smtphosts", "smtpsecure", "smtpauthtype", "smtpuser", "smtppass", "smtpmaxbulk", "smtpoauthservice",
	"noreplyaddress", "emailonlyfromnoreplyaddress", "sitemailcharset", "allowusermailcharset", "mailnewline",
	"emailfromvia", "emailsubjectprefix", "emaildkimselector", "emailheaders",
	// Outgoing proxy.
	"proxyhost", "proxyport", "proxytype", "proxyuser", "proxypassword", "proxybypass", "proxylogunsafe",
	"proxyfixunsafe",
}

// mistakes are settings that public deployment templates set and Moodle never reads.
var mistakes = map[string]string{
	"session_redis_lock_retry": "session_redis_acquire_lock_retry (public deployment templates set session_redis_lock_retry, " +
		"which Moodle never reads: lib/classes/session/redis.php only reads session_redis_acquire_lock_retry)",
	"session_redis_lock_timeout": "session_redis_acquire_lock_timeout",
	"session_redis_password":     "session_redis_auth",
	"session_redis_db":           "session_redis_database",
	"dbport":                     "dboptions' dbport (the database settings' port)",
	"lock_file_root":             "file_lock_root",
}

var (
	knownSet = func() map[string]bool {
		m := map[string]bool{}
		for _, k := range knownSettings {
			m[k] = true
		}
		return m
	}()
	settingNameRe   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	componentRe     = regexp.MustCompile(`^[a-z][a-z0-9]*_[a-z][a-z0-9_]*$`)
	pluginSettingRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_]*$`)
)

// KnownSetting reports whether name may be set in Site.Settings: a core setting Moodle reads from
// config.php ("theme", "sessiontimeout"...), or a plugin setting "component/name" (forced through
// $CFG->forced_plugin_settings). Settings MOHD writes itself, array settings and unknown names are refused
// with a message saying why, and for a misspelt name which one was meant.
func KnownSetting(name string) error {
	if comp, setting, ok := strings.Cut(name, "/"); ok {
		if why, managed := managedSettings[name]; managed {
			return fmt.Errorf("setting %q: %s", name, why)
		}
		if comp == "core" || comp == "moodle" {
			return fmt.Errorf("setting %q: core settings are named without a component: use %q", name, setting)
		}
		if !componentRe.MatchString(comp) {
			return fmt.Errorf("setting %q: %q is not a Moodle component name (type_name, e.g. logstore_standard, auth_ldap)", name, comp)
		}
		if !pluginSettingRe.MatchString(setting) {
			return fmt.Errorf("setting %q: %q is not a Moodle setting name (lowercase letters, digits and underscores)", name, setting)
		}
		return nil
	}
	if why, managed := managedSettings[name]; managed {
		return fmt.Errorf("setting %q: %s", name, why)
	}
	if knownSet[name] {
		return nil
	}
	if slices.Contains(arraySettings, name) {
		return fmt.Errorf("setting %q: Moodle expects a PHP array there, which MOHD's settings (strings) cannot express", name)
	}
	if strings.HasPrefix(name, "behat_") || strings.HasPrefix(name, "phpunit_") {
		return fmt.Errorf("setting %q: a test-environment setting, not for a production site", name)
	}
	if !settingNameRe.MatchString(name) {
		return fmt.Errorf("setting %q: not a Moodle setting name (lowercase letters, digits and underscores; \"component/name\" for a plugin setting)", name)
	}
	if strings.HasPrefix(name, "passwordsaltalt") {
		return nil
	}
	msg := fmt.Sprintf("setting %q: unknown to MOHD (it accepts the settings of Moodle 4.5's config-dist.php, common core admin settings, and plugin settings written \"component/name\")", name)
	if hint, ok := mistakes[name]; ok {
		return fmt.Errorf("%s: did you mean %s?", msg, hint)
	}
	if s := suggest(name); s != "" {
		if why, managed := managedSettings[s]; managed {
			return fmt.Errorf("%s: did you mean %s? (%s)", msg, s, why)
		}
		return fmt.Errorf("%s: did you mean %s?", msg, s)
	}
	return fmt.Errorf("%s; Moodle silently ignores a setting it does not know", msg)
}

// suggest returns the known or managed setting closest to name, or "".
func suggest(name string) string {
	cands := make([]string, 0, len(knownSettings)+len(managedSettings))
	cands = append(cands, knownSettings...)
	for k := range managedSettings {
		if !strings.Contains(k, "/") {
			cands = append(cands, k)
		}
	}
	sort.Strings(cands)
	best, bestScore := "", 1<<30
	words := strings.Split(name, "_")
	for _, c := range cands {
		score := 1 << 30
		// Same words plus one or two more ("lock_retry" for "acquire_lock_retry").
		cw := strings.Split(c, "_")
		if len(cw) > len(words) && len(cw)-len(words) <= 2 && containsAll(cw, words) {
			score = 10 * (len(cw) - len(words))
		}
		if d := levenshtein(name, c); d <= max(2, len(name)/5) && d < score {
			score = d
		}
		if score < bestScore {
			best, bestScore = c, score
		}
	}
	return best
}

func containsAll(set, words []string) bool {
	for _, w := range words {
		if !slices.Contains(set, w) {
			return false
		}
	}
	return true
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
