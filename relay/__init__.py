"""The relay: a uvloop daemon that carries outbox events from PostgreSQL to ClickHouse.

It never imports Django; it knows the web site only through the outbox tables
and names in `shared.outbox`.
"""
