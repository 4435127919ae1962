# Shared ACME state on PostgreSQL (issue 20): pebble and its DNS mock, openssl to compare the
# certificates two nodes serve, and Debian's postgresql (see 95_postgres.sh).
need_cmd pebble pebble
need_cmd pebble-challtestsrv pebble
need_cmd openssl openssl
ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || APT+=(postgresql)
