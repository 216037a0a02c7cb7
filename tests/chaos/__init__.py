"""The chaos suite: produce events, break things on purpose, account for every event.

`python -m tests.chaos` (`make chaos`) runs each scenario against servers of its
own (a scratch PostgreSQL cluster, a private ClickHouse and a TCP proxy in
front of it), then checks the history the way Jepsen's queue checker does:
every event the producer knows it wrote must be visible to analysts exactly
once; nothing may be visible that was never written.
"""
