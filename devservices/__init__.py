"""The local services of a development machine: start, stop and ask after them.

PostgreSQL, Redis and ClickHouse for `make services`, ClickHouse instances of
their own for tests and benchmarks, and a replicated ClickHouse cluster with
ZooKeeper for `make cluster-up` (`python -m devservices --help`). Standard
library only: it runs in the virtualenv `make install` builds, before any test
tool is there. Installing a missing program is left to `scripts/packages.sh`.
"""
