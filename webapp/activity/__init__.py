"""A person's own security activity, read back from the analysts' ClickHouse table."""
