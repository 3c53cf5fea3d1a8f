"""The sustained run's plots (matplotlib, Agg backend), from the series of its report.

throughput.png: tickets offered and decided per second; latency.png: decision latency p50, p95
and p99 per time bin; lag.png: the workers' input lag, in all and per topic; resources.png: CPU
and memory of the workers, the broker, the driver (and the machine's CPU). The steady part of
the run is shaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

__all__ = ("write_plots",)


def write_plots(report: dict[str, Any], out: Path) -> None:
    """Write throughput.png, latency.png, lag.png and resources.png from a report's series."""
    series, steady = report["series"], report["steady"]
    per_ticket = report["throughput"]["records_per_ticket"] or 1.0

    def shade(ax: Any) -> None:
        ax.axvspan(steady["start_s"], steady["end_s"], color="0.92", zorder=0, label="steady")
        ax.set_xlabel("seconds since the first slot")
        ax.grid(alpha=0.3)

    fig, ax = plt.subplots(figsize=(10, 4))
    sent = [n / per_ticket for n in series["sent_records_per_s"]]
    ax.plot(range(len(sent)), sent, label="offered (records sent / records per ticket)", lw=1)
    decided = series["decided_per_s"]
    ax.plot(range(len(decided)), decided, label="tickets decided (first decision)", lw=1)
    ax.set_ylabel("tickets / s")
    shade(ax)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    rows = series["latency_bins"]["rows"]
    for column, label in ((1, "p50"), (2, "p95"), (3, "p99")):
        ax.plot([r[0] for r in rows], [r[column] for r in rows], label=label, lw=1)
    ax.set_ylabel(f"decision latency, ms ({series['latency_bins']['width_s']:g} s bins)")
    if rows:
        ax.set_yscale("log")
    shade(ax)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    lag = series["lag"]
    for column, name in enumerate(lag["columns"][1:], 1):
        times, values = [r[0] for r in lag["rows"]], [r[column] for r in lag["rows"]]
        ax.plot(times, values, lw=1.5 if column == 1 else 0.8, label=name)
    ax.set_ylabel("input lag of the workers' group, records")
    shade(ax)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "lag.png", dpi=110)
    plt.close(fig)

    fig, (cpu, rss) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for name, points in series["resources"].items():
        times = [p[0] for p in points]
        if name == "machine":  # all processes: CPU only (its memory is the whole machine's)
            cpu.plot(times, [p[1] for p in points], label="machine (all)", lw=1, ls=":", c="0.4")
            continue
        cpu.plot(times, [p[1] for p in points], label=name, lw=1)
        rss.plot(times, [p[2] for p in points], label=name, lw=1)
    cpu.set_ylabel("CPU % (of one core)")
    rss.set_ylabel("RSS, MB")
    shade(cpu)
    shade(rss)
    cpu.set_xlabel("")
    cpu.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "resources.png", dpi=110)
    plt.close(fig)
