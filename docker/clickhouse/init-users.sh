#!/bin/sh
# Runs once, when the ClickHouse container initialises its data directory.
# CLICKHOUSE_USER (the admin, with access management) creates the schema
# (`relay migrate`); the relay may only insert into and read the analysts'
# database; the site and analysts may only read it; the worker's eraser may
# delete rows of event_log and event_log_by_user (erasure of deleted
# accounts) and nothing else.
set -eu

# A value as a ClickHouse string literal: backslashes and quotes escaped.
literal() { printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")"; }

clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE DATABASE IF NOT EXISTS \`${CLICKHOUSE_DB}\`;
CREATE USER IF NOT EXISTS diehard_relay IDENTIFIED WITH sha256_password BY $(literal "$CLICKHOUSE_RELAY_PASSWORD");
GRANT INSERT, SELECT ON \`${CLICKHOUSE_DB}\`.* TO diehard_relay;
GRANT SELECT ON system.clusters TO diehard_relay;
CREATE USER IF NOT EXISTS diehard_reader IDENTIFIED WITH sha256_password BY $(literal "$CLICKHOUSE_READER_PASSWORD");
GRANT SELECT ON \`${CLICKHOUSE_DB}\`.* TO diehard_reader;
CREATE USER IF NOT EXISTS diehard_eraser IDENTIFIED WITH sha256_password BY $(literal "$CLICKHOUSE_ERASER_PASSWORD");
GRANT SELECT, ALTER DELETE ON \`${CLICKHOUSE_DB}\`.event_log TO diehard_eraser;
GRANT SELECT, ALTER DELETE ON \`${CLICKHOUSE_DB}\`.event_log_by_user TO diehard_eraser;
SQL
