"""The delivery core: outbox to ClickHouse, the wake-up, and what it reports to its observer."""
