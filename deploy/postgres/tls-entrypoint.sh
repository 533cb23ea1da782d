#!/bin/sh
# Entrypoint wrapper of the postgres service: installs the mounted TLS key where PostgreSQL accepts it,
# then hands over to the image's own entrypoint (which drops to the postgres user).
#
# PostgreSQL refuses a private key that is not owned by the server's user (mode 0600 or less) or by root
# (0640 or less). A bind-mounted key keeps the host's owner, so it is copied, as root, into the
# container's file system with the right owner. The copy lives outside PGDATA and is remade at each start.
set -eu
src=/etc/postgresql/tls
dst=/var/lib/postgresql/tls
install -d -m 0700 -o postgres -g postgres "$dst"
install -m 0644 -o postgres -g postgres "$src/server.crt" "$dst/server.crt"
install -m 0600 -o postgres -g postgres "$src/server.key" "$dst/server.key"
exec docker-entrypoint.sh "$@"
