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


def _mb(x: float | None) -> str:
    return _fmt(x / 1e6 if x else None)


def _framing(raw: dict) -> str:
    """One line on the framing the bare reader saw on the wire."""
    runs = [r for r in raw.get("runs", []) if "chunks_per_event" in r]
    if not runs:
        return "no bare-reader run"
    r = runs[-1]
    text = (
        f"chunks/event {r['chunks_per_event']:.2f} "
        f"(mean chunk {r['mean_chunk_bytes'] / 1e3:.1f} KB, "
        f"{r['chunks_with_several_events']:,} with several events)"
    )
    if r.get("tls_records"):
        text += (
            f", {r['tls_records_per_event']:.2f} TLS records/event, mean TLS record "
            f"{r['mean_tls_record_bytes'] / 1024:.1f} KB "
            f"(max {r['max_tls_record_bytes'] / 1024:.1f} KB)"
            f", {r['proto']}"
        )
    return text


def _fig1_group(g: dict) -> list[str]:
    out = []
    tr = g["transports"]
    labels = list(tr)
    framing = (
        "one HTTP chunk per event, written through net/http like the apiserver"
        if g["framing"] == "apiserver"
        else "**the old coalesced framing**: 256 KB HTTP chunks of whole lines "
        "(no apiserver does this)"
    )
    out.append(
        f"\n{g['pods']:,} pods listed and cached, then {g['events']:,} watch events "
        f"(20% ADDED, 60% MODIFIED, 20% DELETED); {framing}.\n"
    )
    for label in labels:
        wire = _framing(tr[label]["server_raw"])
        out.append(f"- framing on the wire, {label} (bare reader): {wire}")
    out.append("")
    head = "| peer |"
    rule = "|---|"
    for label in labels:
        head += f" {label} events/s | ours vs | CPU µs/event | RSS MB |"
        rule += "---:|---:|---:|---:|"
    head += " lines printed | list sync (s) |"
    rule += "---:|---:|"
    out += [head, rule]
    first = tr[labels[0]]["peers"]
    rows = ["bare-reader", *first]
    for name in rows:
        cells = []
        for label in labels:
            peers = tr[label]["peers"]
            raw = name == "bare-reader"
            src = {"x": tr[label]["server_raw"]} if raw else peers
            key = "x" if raw else name
            eps = _med(src, key, "events_per_s")
            ours = _med(peers, "ours", "events_per_s")
            errs = src.get(key, {}).get("errors")
            err = f" (errors: {len(errs)})" if errs else ""
            rss = _med(src, key, "peak_rss" if raw else "rss_end")
            cells.append(
                f"{_fmt(eps)}{err} | {_ratio(ours, eps, True)} | "
                f"{_fmt(_med(src, key, 'cpu_us_per_event'))} | {_mb(rss)}"
            )
        peers = tr[labels[0]]["peers"]
        tail = (
            "— | —"
            if name == "bare-reader"
            else (f"{_fmt(_med(peers, name, 'lines'))} | {_fmt(_med(peers, name, 'sync_s'))}")
        )
        out.append(f"| {name} | {' | '.join(cells)} | {tail} |")
    return out


def _fig5(f5: dict) -> list[str]:
    out = []
    if "churn" not in f5:  # results from before issue 8
        return out
    churn = f5["churn"]["peers"]
    out.append(
        f"\n## 5. The real kube-apiserver (testenv, its own TLS and framing)\n\n"
        f"**Churn**: {f5['pods']:,} pods created, patched and deleted "
        f"({f5['concurrency']} requests in flight, {_fmt(f5['churn'].get('writes_s'))} s of "
        "writes), every peer as shipped and watching at once; CPU over the churn / the "
        "events the apiserver sent (counted by the bare reader on its own watch).\n"
    )
    out.append(
        "- framing on the wire, apiserver watch (bare reader): "
        + _framing(churn.get("bare-reader", {}))
    )
    out.append("\n| peer | CPU µs/event | ours vs | events | last line (s from first write) |")
    out.append("|---|---:|---:|---:|---:|")
    ours = _med(churn, "ours", "cpu_us_per_event")
    for name in churn:
        if name == "bare-reader":
            continue
        cpu = _med(churn, name, "cpu_us_per_event")
        out.append(
            f"| {name} | {_fmt(cpu)} | {_ratio(ours, cpu, False)} | "
            f"{_fmt(_med(churn, name, 'events'))} | {_fmt(_med(churn, name, 'done_s'))} |"
        )
    sync = f5.get("sync", {}).get("peers", {})
    if sync:
        out.append(
            f"\n**Sync of {f5['sync_pods']:,} pods** (process start to synced; the bare reader: "
            "start to the `k8s.io/initial-events-end` bookmark of a streaming list)\n"
        )
        out.append(
            "- framing on the wire, apiserver streaming list (bare reader): "
            + _framing(sync.get("bare-reader", {}))
        )
        out.append("\n| who | how | sync (s) | vs bare reader |\n|---|---|---:|---:|")
        how = {
            "ours-watchlist": "streaming list (`--streaming-list`)",
            "ours": "pages of 500",
            "bare-reader": "streaming list, drained and counted",
        }
        raw = _med(sync, "bare-reader", "sync_s")
        for name in sync:
            t = _med(sync, name, "sync_s")
            ratio = f"{t / raw:.2f}x" if t and raw else "—"
            out.append(f"| {name} | {how.get(name, '')} | {_fmt(t)} | {ratio} |")
    return out


def targets(result: dict) -> list[str]:
    """Issue 8's targets as ratios, met or missed."""
    rows: list[tuple[str, str, bool | None]] = []

    def add(what: str, value: float | None, goal: float, fmt: str, at_least: bool = True):
        if value is None:
            rows.append((what, "not measured in this run", None))
            return
        met = value >= goal if at_least else value <= goal
        rows.append((what, fmt.format(value), met))

    fast = result.get("fig1", {}).get("fast", {}).get("transports", {})
    tls, plain = fast.get("tls", {}).get("peers", {}), fast.get("plain", {}).get("peers", {})

    def div(a, b):
        return a / b if a and b else None

    o = _med(tls, "ours", "events_per_s")
    add(
        "TLS: ours ≥ 10x lightkube (events/s, with a cache)",
        div(o, _med(tls, "lightkube", "events_per_s")),
        10,
        "{:.2f}x",
    )
    add(
        "TLS: kube-rs CPU µs/event ≥ 5x ours",
        div(_med(tls, "kube-rs", "cpu_us_per_event"), _med(tls, "ours", "cpu_us_per_event")),
        5,
        "{:.2f}x",
    )
    raw = fast.get("tls", {}).get("server_raw", {}).get("median", {}).get("events_per_s")
    add("TLS: ours ≥ 60% of the bare reader's events/s", div(o, raw), 0.6, "{:.0%}")
    add(
        "plain HTTP: ours ≥ 20x lightkube (events/s)",
        div(_med(plain, "ours", "events_per_s"), _med(plain, "lightkube", "events_per_s")),
        20,
        "{:.2f}x",
    )
    f5 = result.get("fig5", {})
    churn = f5.get("churn", {}).get("peers", {})
    oc = _med(churn, "ours", "cpu_us_per_event")
    add(
        "real apiserver churn: ours CPU/event ≤ 1/3 of lightkube's",
        div(oc, _med(churn, "lightkube", "cpu_us_per_event")),
        1 / 3,
        "{:.2f} of it",
        at_least=False,
    )
    add(
        "real apiserver churn: ours CPU/event ≤ 1/4 of client-go's",
        div(oc, _med(churn, "client-go", "cpu_us_per_event")),
        1 / 4,
        "{:.2f} of it",
        at_least=False,
    )
    sync = f5.get("sync", {}).get("peers", {})
    add(
        f"real apiserver: streaming-list sync of {f5.get('sync_pods', 0):,} pods "
        "≤ 1.2x the bare reader",
        div(_med(sync, "ours-watchlist", "sync_s"), _med(sync, "bare-reader", "sync_s")),
        1.2,
        "{:.2f}x",
        at_least=False,
    )
    f4 = result.get("fig4", {}).get("peers", {})
    add(
        f"p99 event→line ≤ 1 ms at {result.get('fig4', {}).get('rate', 0):,.0f} events/s over TLS",
        _med(f4, "ours", "p99_ms"),
        1.0,
        "{:.2f} ms",
        at_least=False,
    )
    out = ["\n## Targets (issue 8)\n", "| target | this run | met? |", "|---|---|---|"]
    for what, value, met in rows:
        verdict = "—" if met is None else "met" if met else "**missed**"
        out.append(f"| {what} | {value} | {verdict} |")
    return out


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
            out.extend(_fig1_group(g))
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
        out.extend(_fig5(result["fig5"]))
    out.extend(targets(result))
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
            gridspec_kw={
                "width_ratios": [
                    1 + len(next(iter(g["transports"].values()))["peers"]) for g in groups.values()
                ]
            },
        )
        for ax, g in zip(axes[0], groups.values(), strict=True):
            labels = list(g["transports"])
            names = ["bare-reader", *g["transports"][labels[0]]["peers"]]
            width = 0.8 / len(labels)
            vals = []
            for k, label in enumerate(labels):
                t = g["transports"][label]
                src = {**t["peers"], "bare-reader": t["server_raw"]}
                v = [_med(src, n, "events_per_s") or 0 for n in names]
                vals += v
                xs = [i + k * width for i in range(len(names))]
                bars = ax.bar(xs, v, width, label=label)
                ax.bar_label(bars, labels=[f"{x / 1e3:,.0f}k" for x in v], fontsize=6)
            ax.set_xticks([i + width * (len(labels) - 1) / 2 for i in range(len(names))], names)
            ax.legend(fontsize=8)
            ax.set_yscale("log")
            ax.set_ylim(10 ** math.floor(math.log10(max(min(vals), 1))) / 2, max(vals) * 2)
            ax.yaxis.set_major_formatter(thousands)
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_ylabel("events/s (log scale)")
            ax.set_title(
                f"{g['pods']:,} pods cached, {g['events']:,} watch events, {g['framing']} framing",
                fontsize=10,
            )
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
