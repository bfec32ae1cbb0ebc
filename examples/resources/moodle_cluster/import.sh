# A site MOHD configured before (state lost, or another workspace) is imported by its name; the next apply
# compares the configuration with the hosts and changes only what differs.
terraform import moodle_cluster.site moodle
