#!/bin/sh
# Runs once, when the PostgreSQL container initialises its data directory.
# The site and the relay each get a role of their own that can log in and do
# nothing else; `manage.py database_grants` (the migrate service) grants them
# their rights on the tables. POSTGRES_USER stays the owner, for migrations only.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v web_password="$POSTGRES_WEB_PASSWORD" -v relay_password="$POSTGRES_RELAY_PASSWORD" <<'SQL'
CREATE ROLE diehard_web LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'web_password';
CREATE ROLE diehard_relay LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'relay_password';
SQL
