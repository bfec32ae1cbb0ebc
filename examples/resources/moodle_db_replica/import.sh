# <cluster name>/<replica name>
terraform import 'moodle_db_replica.db["db2"]' moodle/db2
