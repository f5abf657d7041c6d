"""The markdown table and the PNG charts for one bench/run.py result."""

from __future__ import annotations

import math
from pathlib import Path

from lineup import DESCRIPTIONS


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _ratio(ours: float | None, other: float | None, higher_is_better: bool) -> str:
    if not ours or not other:
        return "—"
    r = ours / other if higher_is_better else other / ours
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def _med(peers: dict, name: str, key: str) -> float | None:
    return peers.get(name, {}).get("median", {}).get(key)


def markdown(result: dict) -> str:
    out = [f"# Benchmark results {result['date']} ({result['mode']}, {result['rounds']} rounds)"]
    m = result["machine"]
    out.append(
        f"\n{m['cpu']}, {m['cores']} cores, load {m['loadavg_start'][0]:.1f} at start, "
        f"{m.get('loadavg_end', [0])[0]:.1f} at end (other work was running). "
        "Medians of interleaved runs; ratios are ours / peer on the same input in the same run."
    )
    out.append("\n## Versions\n\n| peer | what | version |\n|---|---|---|")
    for name, v in result["versions"].items():
        out.append(f"| {name} | {DESCRIPTIONS.get(name, '')} | {v} |")
    if "fig1" in result:
        out.append("\n## 1. Watch throughput (events/s, first watch byte to last line)")
        for g in result["fig1"].values():
            raw = g["server_raw"]
            out.append(
                f"\n{g['pods']:,} pods listed and cached, then {g['events']:,} watch events "
                f"(20% ADDED, 60% MODIFIED, 20% DELETED). Stream server alone: "
                f"{raw['events_per_s']:,.0f} events/s ({raw['mb_per_s']:,.0f} MB/s).\n"
            )
            out.append(
                "| peer | events/s | ours (1 worker) vs peer | CPU µs/event | lines printed "
                "| list sync (s) |"
            )
            out.append("|---|---:|---:|---:|---:|---:|")
            peers = g["peers"]
            ours = _med(peers, "ours", "events_per_s")
            for name in peers:
                eps = _med(peers, name, "events_per_s")
                err = f" (errors: {len(peers[name]['errors'])})" if peers[name]["errors"] else ""
                out.append(
                    f"| {name} | {_fmt(eps)}{err} | {_ratio(ours, eps, True)} | "
                    f"{_fmt(_med(peers, name, 'cpu_us_per_event'))} | "
                    f"{_fmt(_med(peers, name, 'lines'))} | {_fmt(_med(peers, name, 'sync_s'))} |"
                )
    if "fig2" in result:
        out.append("\n## 2. Initial sync (start to `Caches are synced`, pages of 500)\n")
        sizes = list(result["fig2"])
        head = " | ".join(f"{int(s):,} pods: s | ours vs | peak RSS MB" for s in sizes)
        out.append(f"| peer | {head} |")
        out.append("|---|" + "---:|---:|---:|" * len(sizes))
        for name in result["fig2"][sizes[0]]:
            cells = []
            for s in sizes:
                peers = result["fig2"][s]
                t = _med(peers, name, "sync_s")
                pk = _med(peers, name, "peak_rss")
                cells.append(
                    f"{_fmt(t)} | {_ratio(_med(peers, 'ours', 'sync_s'), t, False)} | "
                    f"{_fmt(pk / 1e6 if pk else None)}"
                )
            out.append(f"| {name} | {' | '.join(cells)} |")
    if "fig3" in result:
        f3 = result["fig3"]
        a, b = f3["sizes"]
        out.append(
            f"\n## 3. Memory per cached pod (RSS slope between {a:,} and {b:,} pods; "
            "a pod is ~4.1 KB of JSON)\n"
        )
        out.append(f"| peer | KB per pod | peer / ours | RSS at {b:,} pods (MB) |")
        out.append("|---|---:|---:|---:|")
        ours = f3["peers"].get("ours", {}).get("bytes_per_pod")
        for name, v in f3["peers"].items():
            bpp = v["bytes_per_pod"]
            ratio = f"{bpp / ours:.2f}" if ours else "—"
            out.append(f"| {name} | {bpp / 1e3:.2f} | {ratio} | {v['rss_large'] / 1e6:,.0f} |")
    if "fig4" in result:
        f4 = result["fig4"]
        out.append(
            f"\n## 4. Latency: event sent to its line read (ms), {f4['events']:,} ADDED events "
            f"offered at {f4['rate']:,.0f}/s\n"
        )
        out.append("| peer | p50 | p99 | max |\n|---|---:|---:|---:|")
        for name in f4["peers"]:
            pe = f4["peers"]
            out.append(
                f"| {name} | {_fmt(_med(pe, name, 'p50_ms'))} | {_fmt(_med(pe, name, 'p99_ms'))} "
                f"| {_fmt(_med(pe, name, 'max_ms'))} |"
            )
    if "fig5" in result:
        f5 = result["fig5"]
        out.append(
            f"\n## 5. End to end on the real kube-apiserver: {f5['pods']:,} pods created "
            f"({f5['concurrency']} requests in flight), both controllers watching at once\n"
        )
        out.append(
            "| peer | all Sync lines (s from first create) | after the last create (s) |"
            "\n|---|---:|---:|"
        )
        for name in f5["peers"]:
            pe = f5["peers"]
            out.append(
                f"| {name} | {_fmt(_med(pe, name, 'done_s'))} | {_fmt(_med(pe, name, 'lag_s'))} |"
            )
        out.append(f"\nCreating took {_fmt(f5.get('create_s'))} s (median).")
    return "\n".join(out) + "\n"


def charts(result: dict, out: Path, stem: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    colors = {
        "ours": "#d62728",
        "ours-4w": "#ff7f0e",
        "ours-nostrip": "#ff9896",
        "ours-watchlist": "#e377c2",
        "ours-lz4": "#8c564b",
        "client-go": "#2ca02c",
        "client-go-watchlist": "#98df8a",
    }
    thousands = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}")
    if "fig1" in result:
        groups = result["fig1"]
        fig, axes = plt.subplots(
            1,
            len(groups),
            figsize=(6.5 * len(groups), 4.2),
            squeeze=False,
            gridspec_kw={"width_ratios": [len(g["peers"]) for g in groups.values()]},
        )
        for ax, g in zip(axes[0], groups.values(), strict=True):
            names = list(g["peers"])
            vals = [_med(g["peers"], n, "events_per_s") or 0 for n in names]
            bars = ax.bar(names, vals, color=[colors.get(n, "#1f77b4") for n in names])
            ax.bar_label(bars, labels=[f"{v:,.0f}" for v in vals], fontsize=8)
            ax.set_yscale("log")
            ax.set_ylim(10 ** math.floor(math.log10(max(min(vals), 1))) / 2, max(vals) * 2)
            ax.yaxis.set_major_formatter(thousands)
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_ylabel("events/s (log scale)")
            ax.set_title(f"{g['pods']:,} pods cached, {g['events']:,} watch events", fontsize=10)
            ax.tick_params(axis="x", rotation=30, labelsize=8)
        fig.suptitle("Watch pipeline throughput (median of interleaved runs)")
        fig.tight_layout()
        paths.append(out / f"{stem}-throughput.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    if "fig3" in result:
        f3 = result["fig3"]
        names = list(f3["peers"])
        vals = [f3["peers"][n]["bytes_per_pod"] / 1e3 for n in names]
        fig, ax = plt.subplots(figsize=(7, 4))
        bars = ax.bar(names, vals, color=[colors.get(n, "#1f77b4") for n in names])
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in vals], fontsize=8)
        ax.axhline(4.1, color="grey", linestyle="--", linewidth=1, label="the pod's JSON: 4.1 KB")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_ylabel("KB of RSS per cached pod")
        a, b = f3["sizes"]
        ax.set_title(f"Memory per cached pod (RSS slope {a:,} → {b:,} pods)", fontsize=10)
        ax.tick_params(axis="x", rotation=30, labelsize=8)
        fig.tight_layout()
        paths.append(out / f"{stem}-memory.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    if "fig2" in result:
        sizes = list(result["fig2"])
        names = list(result["fig2"][sizes[0]])
        fig, ax = plt.subplots(figsize=(7.5, 4))
        width = 0.8 / len(sizes)
        for k, s in enumerate(sizes):
            vals = [_med(result["fig2"][s], n, "sync_s") or 0 for n in names]
            xs = [i + k * width for i in range(len(names))]
            bars = ax.bar(xs, vals, width, label=f"{int(s):,} pods")
            ax.bar_label(bars, labels=[f"{v:.2g}" if v else "" for v in vals], fontsize=7)
        ax.set_xticks([i + width * (len(sizes) - 1) / 2 for i in range(len(names))], names)
        ax.set_ylabel("seconds from start to synced")
        ax.set_title("Initial sync (list pages of 500)", fontsize=10)
        ax.tick_params(axis="x", rotation=30, labelsize=8)
        ax.legend()
        fig.tight_layout()
        paths.append(out / f"{stem}-sync.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def write_report(result: dict, out: Path, stem: str) -> str:
    md = markdown(result)
    try:
        paths = charts(result, out, stem)
    except ImportError:
        paths = []
        md += (
            "\n(matplotlib is not installed: no charts; `pip install -r bench/requirements.txt`)\n"
        )
    for p in paths:
        md += f"\n![{p.stem}]({p.name})\n"
    (out / f"{stem}.md").write_text(md)
    return md
