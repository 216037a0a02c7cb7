"""Upkeep beside delivery: the delivered-events archive and reconciliation against ClickHouse."""
