"""Let the relay look after the archive's partitions without owning the archive.

Creating a partition of a table, or dropping one, takes its owner; the relay's
own PostgreSQL role owns nothing. These three functions run as their owner
(the role that migrates) and do exactly one thing each, checked: make the
partition for one delivery hour, drop one hourly partition of the archive,
expire old rows of the default partition. `manage.py database_grants` lets
the relay's role execute them.
"""

from __future__ import annotations

from django.db import migrations

from shared.outbox import (
    ARCHIVE_ADD_PARTITION,
    ARCHIVE_DEFAULT_PARTITION,
    ARCHIVE_DROP_PARTITION,
    ARCHIVE_EXPIRE_DEFAULT,
    ARCHIVE_PARTITION_PREFIX,
    ARCHIVE_TABLE,
)

ADD, DROP, EXPIRE = ARCHIVE_ADD_PARTITION, ARCHIVE_DROP_PARTITION, ARCHIVE_EXPIRE_DEFAULT
PARTITION_NAME = f"^{ARCHIVE_PARTITION_PREFIX}[0-9]{{10}}$"

FORWARD = f"""
CREATE FUNCTION {ADD}(hour timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    start timestamptz := date_trunc('hour', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text := '{ARCHIVE_PARTITION_PREFIX}' || to_char(start AT TIME ZONE 'UTC', 'YYYYMMDDHH24');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN 'exists';
    END IF;
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF {ARCHIVE_TABLE} FOR VALUES FROM (%L) TO (%L)',
        name, start, start + interval '1 hour'
    );
    RETURN 'created';
EXCEPTION WHEN check_violation THEN
    -- The default partition already holds rows of this hour.
    RETURN 'blocked';
END
$$;

CREATE FUNCTION {DROP}(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF name !~ '{PARTITION_NAME}' OR NOT EXISTS (
        SELECT FROM pg_inherits
         WHERE inhrelid = to_regclass(name) AND inhparent = '{ARCHIVE_TABLE}'::regclass
    ) THEN
        RAISE EXCEPTION 'not an hourly partition of {ARCHIVE_TABLE}: %', name;
    END IF;
    EXECUTE format('DROP TABLE %I', name);
END
$$;

CREATE FUNCTION {EXPIRE}(cutoff timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    expired bigint;
BEGIN
    DELETE FROM {ARCHIVE_DEFAULT_PARTITION} WHERE delivered_at < cutoff;
    GET DIAGNOSTICS expired = ROW_COUNT;
    RETURN expired;
END
$$;

REVOKE EXECUTE ON FUNCTION {ADD}(timestamptz), {DROP}(text), {EXPIRE}(timestamptz) FROM PUBLIC;
"""

BACKWARD = f"""
DROP FUNCTION IF EXISTS {ADD}(timestamptz);
DROP FUNCTION IF EXISTS {DROP}(text);
DROP FUNCTION IF EXISTS {EXPIRE}(timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0004_event_context_size_limit")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
