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
TARGET_OVERHEAD_MS = 10.0
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
    """Whether the shipped relay met its targets at `rate` in each placement, and who holds them."""
    rows = [
        row for row in _rows(latency, _variants(latency)[0]) if row["rate"] == rate and not row.get("idle")
    ]
    sentences = []
    for row in rows:
        p99, overhead, floor = row["p99_ms"], row["relay_overhead_p99_ms"], row["clickhouse_insert_p99_ms"]
        met = p99 <= TARGET_P99_MS and overhead <= TARGET_OVERHEAD_MS and row["sustained"]
        where = _placement(row["placement"])
        achieved = f"{row['achieved_rate']:,} events/s achieved of {rate:,.0f} offered"
        sentence = (
            f"**{where}: p99 at {rate:,.0f} events/s {p99:.1f} ms ({achieved}),"
            f" relay overhead {overhead:.1f} ms; targets {TARGET_P99_MS:.0f} ms and"
            f" {TARGET_OVERHEAD_MS:.0f} ms: {'met' if met else 'not met'}.**"
        )
        if not met:
            holders = []
            if p99 > TARGET_P99_MS:
                holders.append(
                    f"ClickHouse's one-row insert alone took {floor:.1f} ms at p99"
                    f" ({row['clickhouse_insert_p50_ms']:.0f} ms p50; {row['clickhouse_inserts_per_s']:.0f}"
                    f" inserts/s, merging {row['clickhouse_merging']:.0%} of a core), so the p99 is"
                    f" {p99 - TARGET_P99_MS:.1f} ms over, "
                    + (
                        f"of which ClickHouse's floor is {floor - TARGET_P99_MS:.1f} ms"
                        if floor > TARGET_P99_MS
                        else f"with ClickHouse's floor itself within the {TARGET_P99_MS:.0f} ms"
                    )
                )
            if overhead > TARGET_OVERHEAD_MS:
                holders.append(
                    "above that floor the relay, PostgreSQL"
                    f" (commit p99 {row['postgres_commit_p99_ms']:.0f} ms), waiting for a core"
                    f" (relay {row['relay_core_wait_ms']:.1f} ms per wake-up) and the observer"
                    f" (period {latency['latency_observer_period_ms']} ms) add {overhead:.1f} ms,"
                    f" {overhead - TARGET_OVERHEAD_MS:.1f} ms over"
                )
            if not row["sustained"]:
                holders.append(
                    f"the producer itself fell behind (p99 {row['schedule_lag_p99_ms']:.0f} ms late)"
                )
            held = "; ".join(holders)
            sentence += " " + held[:1].upper() + held[1:] + "."
        sentences.append(sentence)
    idle = {row["wake"]: row for row in _rows(latency, _variants(latency)[0]) if row.get("idle")}
    if "after-commit" in idle and "trigger" in idle:
        now, before = idle["after-commit"], idle["trigger"]
        sentences.append(
            f"From idle (one event every {1000 / now['rate']:.0f} ms, each finding the relay idle): p99"
            f" {now['p99_ms']:.1f} ms with the site's wake-up after commit against"
            f" {before['p99_ms']:.1f} ms with the old trigger"
            f" (ClickHouse insert p99 {now['clickhouse_insert_p99_ms']:.0f} and"
            f" {before['clickhouse_insert_p99_ms']:.0f} ms beside them)."
        )
    busy = latency["machine"]["busy_share"]
    sentences.append(
        f"The two cores were {busy:.0%} busy during the run, shared with everything else on the machine."
    )
    return " ".join(sentences)


def _placement(name: str) -> str:
    return {"shared": "All processes on both cores", "pinned": "ClickHouse pinned to a core of its own"}.get(
        name, name
    )


def _rows(latency: Figures, variant: str) -> list[Figures]:
    return [row for row in latency["latency_table"] if row["variant"] == variant]


def _variants(latency: Figures) -> list[str]:
    return list(latency["latency_variants"])  # the headline first


def _settings(latency: Figures, variant: str) -> str:
    overrides = latency["latency_variants"][variant]
    return ", ".join(f"`{name}={value}`" for name, value in overrides.items()) or "defaults"


def latency_chart(latency: Figures, path: Path) -> None:
    """Percentiles per offered rate for each placement, with the one-row insert's p99 beside them."""
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    palette = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#937860")
    colours = dict(zip((name for name, _ in PERCENTILES), palette, strict=True))
    styles = {"shared": "-", "pinned": "--"}
    headline = [row for row in _rows(latency, _variants(latency)[0]) if not row.get("idle")]
    rates = sorted({row["rate"] for row in headline})
    unsustained = {row["rate"] for row in headline if not row["sustained"]}
    for placement in sorted({row["placement"] for row in headline}, key=lambda name: name != "shared"):
        rows = sorted((row for row in headline if row["placement"] == placement), key=lambda row: row["rate"])
        places = [rates.index(row["rate"]) for row in rows]
        for key, label in PERCENTILES:
            if placement != "shared" and key not in ("p50", "p99"):
                continue
            axes.plot(
                places,
                [row[f"{key}_ms"] for row in rows],
                marker="o",
                linestyle=styles.get(placement, ":"),
                color=colours[key],
                alpha=1.0 if placement == "shared" else 0.7,
                label=f"{label}, {placement}",
            )
        axes.plot(
            places,
            [row["clickhouse_insert_p99_ms"] for row in rows],
            marker="x",
            color="black",
            linestyle=styles.get(placement, ":"),
            label=f"one-row insert p99, {placement}",
        )
    axes.axhline(TARGET_P99_MS, color="grey", linewidth=0.8, linestyle=":")
    axes.text(0, TARGET_P99_MS, " target p99", color="grey", va="bottom", fontsize=8)
    ticks = [f"{rate:,.0f}" + ("*" if rate in unsustained else "") for rate in rates]
    axes.set_xticks(range(len(rates)), ticks)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("offered rate, events/s (* = the producer could not keep the schedule in some cell)")
    axes.set_ylabel("commit -> visible in ClickHouse, ms")
    axes.set_title("End-to-end latency under steady traffic")
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(fontsize=7, ncol=2, loc="upper left")
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
    """Producer commit rate for each way of waking the relay, side by side."""
    keys = producers["variants"]
    rates = [producers[f"producer_tps_{key}"] for key in keys]
    ratios = [producers[f"producer_ratio_{key}"] for key in keys]
    figure, axes = plt.subplots(figsize=(8, 4), dpi=110)
    colours = ["#55a868" if key == producers["wakeup_shipped"] else "#4c72b0" for key in keys]
    bars = axes.bar(keys, rates, color=colours)
    for bar, ratio in zip(bars, ratios, strict=True):
        axes.annotate(
            f"{ratio:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom"
        )
    axes.set_ylabel("committed transactions/s (median)")
    axes.set_title(
        f"What waking the relay costs {producers['clients']} producers ({producers['transaction']})"
    )
    axes.set_ylim(0, max(rates) * 1.15)
    axes.tick_params(axis="x", labelsize=8)
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


def readside_lines(readside: Figures) -> list[str]:
    """The read side's table: the activity page's query, old and new, and erasure, at each size."""
    lines = [
        "### The read side: activity page and erasure (`python -m benchmarks.readside`)",
        "",
        f"Run: {_machine(readside)}.",
        "",
        f"{readside['users']:,} accounts; the first page's ClickHouse query (21 rows) over HTTP with the"
        " site's client, for random accounts. *old*: `event_log_dedup` filtered by the payload's"
        " `user_id`; *new*: `event_log_by_user FINAL` by (environment, user_id).",
        "",
        "| events | load | old p50 | old p99 | new p50 | new p99 | samples old / new |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in readside["readside_table"]:
        old, new = row["old"], row["new"]
        lines.append(
            f"| {row['events']:,} | {row['load_s']:.1f} s | {old['p50_ms']:,.1f} ms | {old['p99_ms']:,.1f} ms"
            f" | {new['p50_ms']:,.1f} ms | **{new['p99_ms']:,.1f} ms**"
            f" | {old['samples']} / {new['samples']} |"
        )
    met = "met" if readside["page_target_met"] else "not met"
    lines += [
        "",
        f"Target p99 ≤ 100 ms per page at the largest size: **{met}**. Erasure at"
        f" {readside['erasure_events']:,} events, until ClickHouse reports its mutations done: old"
        f" (`event_log` only) {readside['erasure_old_s']:.2f} s, new (`event_log` and `event_log_by_user`)"
        f" {readside['erasure_new_s']:.2f} s, {readside['erasure_batch_accounts']} accounts in one mutation"
        f" per table {readside['erasure_batch_s']:.2f} s; erased from the copy too:"
        f" {'yes' if readside['erased_everywhere'] else 'NO'}.",
        "",
    ]
    return lines


def section(
    producers: Figures,
    relay: Figures,
    latency: Figures,
    completeness: Figures | None = None,
    readside: Figures | None = None,
) -> str:
    """The generated part of docs/BENCHMARKS.md."""
    lines = [BEGIN, "", "### Latency under steady traffic (`python -m benchmarks.latency`)", ""]
    lines.append(f"Run: {_machine(latency)}.")
    lines += [
        "",
        f"One producer process ({latency['latency_producer_connections']} connections, one event per"
        f" transaction, the wake-up after commit as the site sends it), {latency['latency_rounds']} rounds of"
        f" {latency['latency_seconds']:g} s per cell (pooled), observer period"
        f" {latency['latency_observer_period_ms']} ms (included in every figure); ClickHouse is a server the"
        " benchmark starts for itself. All times in ms. *Placement*: *shared*, every process on both cores;"
        " *pinned*, that ClickHouse alone on one core, the relay, the producer and the observer on the other"
        " (PostgreSQL is the machine's and runs on either). *Overhead*: p99 minus the p99 of a one-row"
        " ClickHouse insert probed beside the relay every 50 ms (what the relay, PostgreSQL and the observer"
        " add above ClickHouse's floor). *Producer late*: how late the producer committed against its"
        " schedule; *relay core wait*: the relay's mean wait for a core each time it became runnable;"
        " *batch*: claim to commit, from the relay's own histogram; *ClickHouse merging*: merge time per"
        " second (100% = a core's worth). *Idle* rows: one event every few hundred ms, each finding the relay"
        " idle, woken by the site's wake-up after commit or by the old trigger.",
        "",
        "| offered events/s | placement | wake-up | events | achieved/s | p50 | p90 | p99 | p99.9 | max"
        " | overhead p99 | producer late p99 | relay CPU | relay core wait | batch | events/batch"
        " | ClickHouse insert p50/p99 | PostgreSQL commit p50/p99 | ClickHouse inserts/s"
        " | ClickHouse merging |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = {"shared": 0, "pinned": 1}
    table = sorted(
        latency["latency_table"],
        key=lambda row: (bool(row.get("idle")), row["rate"], order.get(row["placement"], 2), row["wake"]),
    )
    for row in table:
        rate = ("idle, " if row.get("idle") else "") + f"{row['rate']:,.0f}"
        rate += "" if row["sustained"] else " (not sustained)"
        lines.append(
            f"| {rate} | {row['placement']} | {row['wake']} | {row['events']:,} | {row['achieved_rate']:,}"
            + "".join(f" | {row[f'{key}_ms']:.1f}" for key, _ in PERCENTILES)
            + f" | **{row['relay_overhead_p99_ms']:.1f}** | {row['schedule_lag_p99_ms']:.0f}"
            f" | {row['relay_cpu']:.0%} | {row['relay_core_wait_ms']:.1f}"
            f" | {row['batch_ms']:.1f} | {row['events_per_batch']:.1f}"
            f" | {row['clickhouse_insert_p50_ms']:.0f}/{row['clickhouse_insert_p99_ms']:.0f}"
            f" | {row['postgres_commit_p50_ms']:.0f}/{row['postgres_commit_p99_ms']:.0f}"
            f" | {row['clickhouse_inserts_per_s']:.0f} | {row['clickhouse_merging']:.0%} |"
        )
    if len(_variants(latency)) > 1:
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
    ratio = relay["relay_to_pg_drain_ratio"]
    lines += [
        "",
        f"{relay['events']:,} events per run, batch {relay['batch_size']:,},"
        f" {relay['concurrency']} forwarders per process; every event delivered exactly once:"
        f" {'yes' if relay['exactly_once'] else 'NO'}. One relay against the drain measured just before it"
        f" (median of the rounds): **{ratio:.2f}** (target 0.9: "
        + (
            "met)."
            if ratio >= 0.9
            else f"not met, {0.9 - ratio:.2f} short; the drain and the relay both ran on cores"
            f" {relay['machine']['busy_share']:.0%} busy, where the relay's process, ClickHouse and"
            " PostgreSQL compete for the same two cores)."
        ),
        "",
    ]
    if "rss_after_backlog_mb" in relay:
        held = max(relay["steady_rss_mb"], relay["rss_after_backlog_mb"])
        lines += [
            f"Memory of one relay (median of the rounds): **{relay['steady_rss_mb']:.1f} MB** idle before the"
            f" backlog, {relay['drained_rss_mb']:.1f} MB the moment it was drained,"
            f" **{relay['rss_after_backlog_mb']:.1f} MB** idle {relay['rss_settle_seconds']:g} s later;"
            f" peak {relay['peak_rss_mb']:.1f} MB while"
            f" draining (target: at most {relay['rss_target_mb']:.0f} MB idle, also after a backlog: "
            + (
                "met)."
                if held <= relay["rss_target_mb"]
                else f"not met, {held - relay['rss_target_mb']:.1f} MB over: what an idle relay holds is"
                " almost all the code it imports, see *Memory* below)."
            ),
            "",
        ]
    lines += [
        "![throughput per relay count](img/scaleout.png)",
        "",
        "### Producer cost of the wake-up (`python -m benchmarks.producers`)",
        "",
        f"Run: {_machine(producers)}.",
        "",
        f"{producers['clients']} producer connections, {producers['transaction']} per event, variants taking"
        f" turns in {producers['slice_seconds']:g} s slices, {producers['seconds']:g} s each per run;"
        f" {producers.get('runs', 1)} run(s), each figure the median over them.",
        "",
        "| wake-up | what | tx/s | ratio to none | server CPU µs/tx | CPU ratio to none | notifications/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key in producers["variants"]:
        shipped = key == producers["wakeup_shipped"]
        ratio_text = f"{producers[f'producer_ratio_{key}']:.3f}"
        lines.append(
            f"| {'**' + key + '** (ships)' if shipped else key} | {producers['variant_labels'][key]}"
            f" | {producers[f'producer_tps_{key}']:,.0f}"
            f" | {'**' + ratio_text + '**' if shipped else ratio_text}"
            f" | {producers.get(f'producer_server_us_{key}', float('nan')):.0f}"
            f" | {producers.get(f'producer_cpu_ratio_{key}', float('nan')):.3f}"
            f" | {producers[f'notifications_per_s_{key}']:,.0f} |"
        )
    if runs := producers.get("wakeup_ratio_runs"):
        polling = ", ".join(f"{value:.3f}" for value in producers.get("polling_ratio_runs", []))
        cpu_runs = ", ".join(f"{value:.3f}" for value in producers.get("wakeup_cpu_ratio_runs", []))
        lines += [
            "",
            f"The shipped wake-up's rate ratio in each run: {', '.join(f'{value:.3f}' for value in runs)};"
            f" its server CPU ratio: {cpu_runs}."
            f" *polling* writes exactly as *none* does, so its rate ratio ({polling}) is the noise of the"
            " measurement itself; *server CPU µs/tx* is what the PostgreSQL backends serving a variant"
            " spent per committed transaction, which the neighbours' load moves less than the commit rate."
            f" Requirement: at least {producers['required_ratio']:.2f}.",
        ]
    lines += [
        "",
        "![producer commit rate with each wake-up](img/producers.png)",
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
    if readside is not None:
        lines += readside_lines(readside)
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
    readside_file = args.folder / "readside.json"
    readside = json.loads(readside_file.read_text()) if readside_file.exists() else None
    rewrite(args.doc, section(producers, relay, latency, completeness, readside))
    print(f"charts in {args.images}, results in {args.doc}")
    summary = {
        **producers,
        **relay,
        **(completeness or {}),
        **{k: v for k, v in (readside or {}).items() if k != "readside_table"},
        **{k: v for k, v in latency.items() if k != "latency_table"},
    }
    summary.pop("machine", None)
    print(json.dumps({**summary, "machine": latency["machine"]}))


if __name__ == "__main__":
    main()
