# Managed by MOHD: an interactive shell left idle for 15 minutes is closed, and no shell dumps core.
# The guard lets a login shell that inherited the timeout read this file again without failing on the
# read-only variable.
if [ "${TMOUT:-}" != 900 ]; then
	TMOUT=900
	readonly TMOUT
	export TMOUT
fi
ulimit -c 0
