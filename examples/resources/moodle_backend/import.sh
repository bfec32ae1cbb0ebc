# <cluster name>/<backend name>
terraform import 'moodle_backend.web["web1"]' moodle/web1
