"""`python -m tests.chaos` (`make chaos`): every scenario, one row each, then one JSON line.

    python -m tests.chaos [--only NAME ...] [--list] [--seed N] [--keep-logs] [--markdown FILE]

Exits 0 only when every scenario ran and nothing was lost, visible twice or
unexpected. Interrupted (Ctrl-C, SIGTERM), it stops every process it started
and removes its scratch servers before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from tests.chaos import failover, report, scenarios  # noqa: F401 (registers the scenarios)
from tests.chaos.suite import SCENARIOS, SHORT, Result, install_signal_handlers, run_scenario, scratch_servers


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="run only these scenarios")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="random seed (printed)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the relays' and servers' logs")
    parser.add_argument("--markdown", type=Path, help="also write the results table as Markdown here")
    return parser.parse_args(argv)


async def run(options: argparse.Namespace) -> int:
    install_signal_handlers()
    names = options.only or list(SCENARIOS)
    results: list[Result] = []
    errors: list[str] = []
    print(f"chaos: {len(names)} scenarios, seed {options.seed}", flush=True)
    try:
        async with scratch_servers(keep_logs=options.keep_logs) as servers:
            print(report.header(), flush=True)
            for number, name in enumerate(names):
                try:
                    result = await run_scenario(servers, SCENARIOS[name], SHORT, seed=options.seed + number)
                except Exception as error:
                    errors.append(name)
                    print(f"{name}: error: {type(error).__name__}: {error}", flush=True)
                    continue
                results.append(result)
                print(report.row(result), flush=True)
                for problem in result.problems:
                    print(f"    problem: {problem}", flush=True)
                for note in result.notes:
                    print(f"    note: {note}", flush=True)
    except asyncio.CancelledError:
        errors.append("interrupted")
    if options.markdown:
        options.markdown.write_text(report.markdown(results) + "\n")
    print(report.summary(results, failed=errors), flush=True)
    return 0 if not errors and all(result.passed for result in results) else 1


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    if options.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<36} {scenario.summary}")
        return 0
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(main())
