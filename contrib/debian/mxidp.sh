#!/bin/sh
# /usr/bin/mxidp of the Debian package: the command line against the
# packaged configuration. Run by root it works as the service user, so
# that what it creates in /var/lib/mxidp (the SQLite database and its
# journal) stays the service's.
set -e
: "${MXIDP_CONFIG:=/etc/mxidp/mxidp.yaml}"
export MXIDP_CONFIG
if [ "$(id -u)" = 0 ]; then
	exec runuser -u mxidp -- /usr/lib/mxidp/mxidp "$@"
fi
exec /usr/lib/mxidp/mxidp "$@"
