"""Charts and the results section of docs/BENCHMARKS.md, drawn from the benchmarks' own JSON output.

`make bench` runs the three benchmarks with `--json` into one folder, then this:

    python -m benchmarks.report docs/results

It draws the PNG charts into `docs/img/`, rewrites the part of
`docs/BENCHMARKS.md` between the `results` markers (tables, charts, date,
machine, how busy it was), and prints every figure as one JSON line, last.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
IMAGES = ROOT / "docs" / "img"
BEGIN = "<!-- results:begin (written by `python -m benchmarks.report`; do not edit by hand) -->"
END = "<!-- results:end -->"
TARGET_P99_MS = 50.0
PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))

Figures = dict[str, Any]


def load(folder: Path) -> tuple[Figures, Figures, Figures, Figures | None]:
    """The JSON lines of the producers, relay, latency and (when it ran) completeness benchmarks."""
    producers, relay, latency = (
        json.loads((folder / f"{name}.json").read_text()) for name in ("producers", "relay", "latency")
    )
    completeness = folder / "completeness.json"
    return producers, relay, latency, json.loads(completeness.read_text()) if completeness.exists() else None


def tail_verdict(latency: Figures, rate: float = 1000.0) -> str:
    """Whether the shipped relay met the p99 target at `rate`, and what set the tail (the run's figures)."""
    rows = {row["rate"]: row for row in _rows(latency, _variants(latency)[0])}
    row, low = rows.get(rate), rows.get(min(rows))
    if row is None or low is None:
        return ""
    met = row["p99_ms"] <= TARGET_P99_MS
    achieved = f"{row['achieved_rate']:,} events/s achieved of {rate:,.0f} offered"
    verdict = (
        f"**p99 at {rate:,.0f} events/s: {row['p99_ms']:.1f} ms ({achieved}); target {TARGET_P99_MS:.0f} ms:"
        f" {'met' if met else 'not met'}.**"
    )
    if met:
        return verdict
    insert, insert_low = row["clickhouse_insert_p99_ms"], low["clickhouse_insert_p99_ms"]
    busy = latency["machine"]["busy_share"]
    return (
        f"{verdict} What sets the tail is ClickHouse's insert, which every event waits for: its one-row"
        f" insert, probed beside the relay, took {insert:.0f} ms at p99"
        f" ({row['clickhouse_insert_p50_ms']:.0f} ms p50) at this rate against {insert_low:.0f} ms at"
        f" {low['rate']:,.0f} events/s. ClickHouse served {row['clickhouse_inserts_per_s']:.0f} inserts/s"
        f" ({row['events_per_batch']:.0f} events per relay batch) and merged for"
        f" {row['clickhouse_merging']:.0%} of a core: on 18.16 each insert writes a part of two files per"
        f" column whatever its size, then merges it ({row['clickhouse_delayed_inserts']} inserts held back"
        f" for too many parts). The two cores were {busy:.0%} busy, shared by the producers, PostgreSQL,"
        f" ClickHouse, the relay and the observer's {row['clickhouse_selects_per_s']:.0f} queries/s; the"
        f" producers {'kept' if row['sustained'] else 'could not keep'} the schedule (p99"
        f" {row['schedule_lag_p99_ms']:.0f} ms late). The relay's own share is small: batch (claim to"
        f" commit) {row['batch_ms']:.0f} ms on average of which the insert is most, PostgreSQL commit p99"
        f" {row['postgres_commit_p99_ms']:.0f} ms, relay core wait {row['relay_core_wait_ms']:.1f} ms,"
        f" observer period {latency['latency_observer_period_ms']} ms.{_other_variants(latency, rate)}"
        " Next step: ClickHouse on cores of its own (its own machine or container, as in production)"
        " and a current ClickHouse server, whose small inserts write compact parts (one data file),"
        " measured again."
    )


def _rows(latency: Figures, variant: str) -> list[Figures]:
    return [row for row in latency["latency_table"] if row["variant"] == variant]


def _variants(latency: Figures) -> list[str]:
    return list(latency["latency_variants"])  # the headline first


def _settings(latency: Figures, variant: str) -> str:
    overrides = latency["latency_variants"][variant]
    return ", ".join(f"`{name}={value}`" for name, value in overrides.items()) or "defaults"


def latency_chart(latency: Figures, path: Path) -> None:
    """Percentiles per offered rate: the headline variant solid, the others' p50 and p99 dashed."""
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    palette = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#937860")
    colours = dict(zip((name for name, _ in PERCENTILES), palette, strict=True))
    styles = ("-", "--", "-.", ":")
    # One place on the axis per offered rate, whichever variant sustained it.
    rates = sorted({row["rate"] for row in latency["latency_table"]})
    unsustained = {row["rate"] for row in latency["latency_table"] if not row["sustained"]}
    for number, variant in enumerate(_variants(latency)):
        rows = _rows(latency, variant)
        places = [rates.index(row["rate"]) for row in rows]
        for key, label in PERCENTILES:
            if number and key not in ("p50", "p99"):
                continue
            axes.plot(
                places,
                [row[f"{key}_ms"] for row in rows],
                marker="o",
                linestyle=styles[number % len(styles)],
                color=colours[key],
                alpha=1.0 if number == 0 else 0.6,
                label=f"{label}, {variant}",
            )
    headline = _rows(latency, _variants(latency)[0])
    axes.plot(
        [rates.index(row["rate"]) for row in headline],
        [row["clickhouse_insert_p99_ms"] for row in headline],
        marker="x",
        color="black",
        linestyle=":",
        label="ClickHouse one-row insert p99 (probe)",
    )
    axes.axhline(TARGET_P99_MS, color="grey", linewidth=0.8, linestyle=":")
    axes.text(0, TARGET_P99_MS, " target p99", color="grey", va="bottom", fontsize=8)
    ticks = [f"{rate:,.0f}" + ("*" if rate in unsustained else "") for rate in rates]
    axes.set_xticks(range(len(rates)), ticks)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("offered rate, events/s (* = producers could not keep the schedule in some run)")
    axes.set_ylabel("commit -> visible in ClickHouse, ms")
    axes.set_title("End-to-end latency under steady traffic")
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(fontsize=7, ncol=2, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def scaleout_chart(relay: Figures, path: Path) -> None:
    """Drain throughput per number of relay processes, against the raw PostgreSQL drain."""
    counts = sorted(int(key.rsplit("_", 1)[1]) for key in relay if key.startswith("scaleout_events_per_s_"))
    rates = [relay[f"scaleout_events_per_s_{count}"] / 1000 for count in counts]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=110)
    bars = axes.bar([str(count) for count in counts], rates, color="#4c72b0")
    for bar, count in zip(bars, counts, strict=True):
        axes.annotate(
            f"{relay[f'scaleout_peak_rss_mb_{count}']:.0f} MB RSS\n(each, peak)",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axes.axhline(
        relay["pg_drain_events_per_s"] / 1000, color="#c44e52", linestyle="--", label="raw PostgreSQL drain"
    )
    axes.set_xlabel("relay processes on one outbox")
    axes.set_ylabel("thousand events/s")
    axes.set_title(f"Draining {relay['events']:,} events")
    axes.set_ylim(0, max(*rates, relay["pg_drain_events_per_s"] / 1000) * 1.25)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def producers_chart(producers: Figures, path: Path) -> None:
    """Producer commit rate with no wake-up, the debounced one, and a NOTIFY per commit."""
    labels = ["no wake-up", f"debounced ({producers['debounce_ms']} ms)", "NOTIFY every commit"]
    rates = [
        producers["producer_tps_no_wakeup"],
        producers["producer_tps_debounced"],
        producers["producer_tps_notify_every_commit"],
    ]
    ratios = [1.0, producers["debounced_ratio"], producers["naive_ratio"]]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=110)
    bars = axes.bar(labels, rates, color=["#55a868", "#4c72b0", "#c44e52"])
    for bar, ratio in zip(bars, ratios, strict=True):
        axes.annotate(
            f"{ratio:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom"
        )
    axes.set_ylabel("committed transactions/s")
    axes.set_title(f"What the wake-up costs {producers['clients']} producers ({producers['transaction']})")
    axes.set_ylim(0, max(rates) * 1.15)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _machine(figures: Figures) -> str:
    machine = figures["machine"]
    load = "/".join(f"{value:.1f}" for value in machine["load_before"])
    return (
        f"{machine['date']}, {machine['cores']} x {machine['cpu']}, {machine['memory_gib']:.0f} GiB,"
        f" Linux {machine['kernel']}; during its {machine['seconds']} s the cores were"
        f" {machine['busy_share']:.0%} busy (all processes) and some task was waiting for a core"
        f" {machine.get('cpu_pressure', 0):.0%} of the time; load average {load} before it"
    )


def _other_variants(latency: Figures, rate: float) -> str:
    """The other variants' tails at `rate`: how batching more per insert traded against waiting longer."""
    others = [
        f"*{row['variant']}* p99 {row['p99_ms']:.1f} ms (ClickHouse insert p99"
        f" {row['clickhouse_insert_p99_ms']:.0f} ms, {row['events_per_batch']:.0f} events per batch)"
        for variant in _variants(latency)[1:]
        for row in _rows(latency, variant)
        if row["rate"] == rate
    ]
    return f" Beside it at this rate: {'; '.join(others)}." if others else ""


def section(producers: Figures, relay: Figures, latency: Figures, completeness: Figures | None = None) -> str:
    """The generated part of docs/BENCHMARKS.md."""
    lines = [BEGIN, "", "### Latency under steady traffic (`python -m benchmarks.latency`)", ""]
    lines.append(f"Run: {_machine(latency)}.")
    lines += [
        "",
        f"{latency['latency_producers']} producer processes, {latency['latency_rounds']} rounds of"
        f" {latency['latency_seconds']:g} s per cell (pooled), observer period"
        f" {latency['latency_observer_period_ms']} ms (included in every figure). All times in ms;"
        " *producers late*: how late producers committed against their schedule; *relay core wait*:"
        " the relay's mean wait for a core each time it became runnable; *batch*: claim to commit, from"
        " the relay's own histogram; *ClickHouse insert*, *PostgreSQL commit*: probes beside the relay every"
        " 50 ms; *ClickHouse inserts/s*: all the server served (the relay's and the probe's); *ClickHouse"
        " merging*: its merges' running time per second of the run (100% = a core's worth).",
        "",
        "| offered events/s | relay | events | achieved/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms"
        " | producers late p99 | relay CPU | relay core wait | batch ms | events/batch"
        " | ClickHouse insert p50/p99 | PostgreSQL commit p50/p99"
        " | ClickHouse inserts/s | ClickHouse merging |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rates = sorted({row["rate"] for row in latency["latency_table"]})
    for rate_offered in rates:
        for row in (row for variant in _variants(latency) for row in _rows(latency, variant)):
            if row["rate"] != rate_offered:
                continue
            variant = row["variant"]
            rate = f"{row['rate']:,.0f}" + ("" if row["sustained"] else " (not sustained)")
            lines.append(
                f"| {rate} | {variant} | {row['events']:,} | {row['achieved_rate']:,}"
                + "".join(f" | {row[f'{key}_ms']:.1f}" for key, _ in PERCENTILES)
                + f" | {row['schedule_lag_p99_ms']:.0f} | {row['relay_cpu']:.0%}"
                f" | {row['relay_core_wait_ms']:.1f}"
                f" | {row['batch_ms']:.1f} | {row['events_per_batch']:.1f}"
                f" | {row['clickhouse_insert_p50_ms']:.0f}/{row['clickhouse_insert_p99_ms']:.0f}"
                f" | {row['postgres_commit_p50_ms']:.0f}/{row['postgres_commit_p99_ms']:.0f}"
                f" | {row['clickhouse_inserts_per_s']:.0f} | {row['clickhouse_merging']:.0%} |"
            )
    lines += [
        "",
        "Relay variants: "
        + "; ".join(f"*{name}*: {_settings(latency, name)}" for name in _variants(latency))
        + ".",
    ]
    if verdict := tail_verdict(latency):
        lines += ["", verdict]
    lines += ["", "![latency percentiles per rate](img/latency.png)", ""]
    lines += [
        "### Throughput and scale-out (`python -m benchmarks.relay`)",
        "",
        f"Run: {_machine(relay)}.",
        "",
    ]
    lines += [
        "| measure | events/s | note |",
        "|---|---:|---|",
        f"| raw PostgreSQL drain (no sink) | {relay['pg_drain_events_per_s']:,} | the ceiling |",
    ]
    counts = sorted(int(key.rsplit("_", 1)[1]) for key in relay if key.startswith("scaleout_events_per_s_"))
    for count in counts:
        rate = relay[f"scaleout_events_per_s_{count}"]
        lines.append(
            f"| {count} relay process{'es' if count > 1 else ''} | {rate:,}"
            f" | {rate / relay['pg_drain_events_per_s']:.2f} of the drain;"
            f" peak RSS {relay[f'scaleout_peak_rss_mb_{count}']:.0f} MB per process |"
        )
    if "naive_relay_events_per_s" in relay:
        lines.append(
            f"| naive relay (rows through Python) | {relay['naive_relay_events_per_s']:,}"
            f" | the relay is {relay['relay_to_naive_ratio']:.1f}x faster |"
        )
    lines += [
        "",
        f"{relay['events']:,} events per run, batch {relay['batch_size']:,},"
        f" {relay['concurrency']} forwarders per process; every event delivered exactly once:"
        f" {'yes' if relay['exactly_once'] else 'NO'}.",
        "",
        "![throughput per relay count](img/scaleout.png)",
        "",
        "### Producer cost of the wake-up (`python -m benchmarks.producers`)",
        "",
        f"Run: {_machine(producers)}.",
        "",
        "| transaction | no wake-up tx/s | debounced tx/s | ratio | NOTIFY every commit tx/s | ratio |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {producers['transaction']} | {producers['producer_tps_no_wakeup']:,.0f}"
        f" | {producers['producer_tps_debounced']:,.0f} | **{producers['debounced_ratio']:.2f}**"
        f" | {producers['producer_tps_notify_every_commit']:,.0f} | {producers['naive_ratio']:.2f} |",
        "",
        "![producer commit rate with and without the wake-up](img/producers.png)",
        "",
    ]
    if completeness is not None:
        events, flood = f"{completeness['events']:,}", f"{completeness['poison_events']:,}"
        lines += [
            "### What completeness costs (`python -m benchmarks.completeness`)",
            "",
            f"Run: {_machine(completeness)}.",
            "",
            "| run | events | events/s | ratio |",
            "|---|---:|---:|---:|",
            f"| archive of delivered events on | {events} | {completeness['archive_on_events_per_s']:,}"
            f" | **{completeness['archive_on_to_off_ratio']:.2f}** of off |",
            f"| archive off | {events} | {completeness['archive_off_events_per_s']:,} | |",
            f"| clean | {flood} | {completeness['poison_clean_events_per_s']:,} | |",
            f"| 1% poison | {flood} | {completeness['poison_flood_events_per_s']:,}"
            f" | **{completeness['poison_flood_to_clean_ratio']:.2f}** of clean |",
            "",
            "Best round for the rates, median of the rounds' ratios; every event once in ClickHouse and every"
            f" refused one in the dead letters: {'yes' if completeness['exact'] else 'NO'}.",
            "",
        ]
        if "replay_events_per_s" in completeness:
            lines += [
                f"The archive took **{completeness['archive_mib_per_million_events']:,.0f} MiB per million"
                f" events** on disk (indexes included), and `relay replay` sent the {events} archived events"
                f" into an empty ClickHouse at **{completeness['replay_events_per_s']:,} events/s**"
                " (its own timing, start-up aside).",
                "",
            ]
    lines.append(END)
    return "\n".join(lines)


def rewrite(doc: Path, generated: str) -> None:
    """Replace the generated part of the document (it must hold both markers)."""
    text = doc.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{doc} has no results markers")
    doc.write_text(pattern.sub(lambda _: generated, text))


def main(argv: list[str] | None = None) -> None:
    """Draw, write, print."""
    cli = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    cli.add_argument(
        "folder", type=Path, help="where the benchmarks wrote producers.json, relay.json, latency.json"
    )
    cli.add_argument("--doc", type=Path, default=DOC)
    cli.add_argument("--images", type=Path, default=IMAGES)
    args = cli.parse_args(argv)
    producers, relay, latency, completeness = load(args.folder)
    args.images.mkdir(parents=True, exist_ok=True)
    latency_chart(latency, args.images / "latency.png")
    scaleout_chart(relay, args.images / "scaleout.png")
    producers_chart(producers, args.images / "producers.png")
    rewrite(args.doc, section(producers, relay, latency, completeness))
    print(f"charts in {args.images}, results in {args.doc}")
    summary = {
        **producers,
        **relay,
        **(completeness or {}),
        **{k: v for k, v in latency.items() if k != "latency_table"},
    }
    summary.pop("machine", None)
    print(json.dumps({**summary, "machine": latency["machine"]}))


if __name__ == "__main__":
    main()
