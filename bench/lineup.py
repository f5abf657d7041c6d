"""The peers: how to start each one against a kubeconfig, and its version."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from harness import HERE, PY, STREAMSERVER_BIN
from streams import CACHE

ROOT = HERE.parent
BIN = Path(PY).parent
CLIENTGO_BIN = CACHE / "bench" / "clientgo-workqueue"
CLIENTGO_MOD = HERE / "clientgo"
STREAMSERVER_SRC = HERE / "streamserver-go"
KUBERS_SRC = HERE / "kubers-peer"
KUBERS_TARGET = CACHE / "bench-target"
KUBERS_BIN = CACHE / "bench" / "kubers-peer"


@dataclass
class Peer:
    name: str
    argv: list[str]  # "{kc}" is replaced by the kubeconfig path
    version: str
    env: dict[str, str] = field(default_factory=dict)

    def command(self, kubeconfig: str) -> list[str]:
        return [kubeconfig if a == "{kc}" else a for a in self.argv]


def _v(dist: str) -> str:
    try:
        return f"{dist} {metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        return f"{dist} (not installed)"


def clientgo_version() -> str:
    text = (CLIENTGO_MOD / "go.mod").read_text()
    m = re.search(r"k8s.io/client-go (v\S+)", text)
    return f"k8s.io/client-go/examples/workqueue {m.group(1) if m else '?'}"


def build_clientgo() -> None:
    """go build the pinned example into the cache (Go's build cache makes reruns quick)."""
    CLIENTGO_BIN.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "build", "-o", str(CLIENTGO_BIN), "k8s.io/client-go/examples/workqueue"],
        cwd=CLIENTGO_MOD,
        check=True,
    )


def build_streamserver() -> None:
    """go build the stream server + bare reader (stdlib only) into the cache."""
    STREAMSERVER_BIN.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "build", "-o", str(STREAMSERVER_BIN), "."], cwd=STREAMSERVER_SRC, check=True
    )


def build_kubers() -> None:
    """cargo build --release --locked the kube-rs peer; its target dir is in the cache."""
    KUBERS_BIN.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CARGO_TARGET_DIR": str(KUBERS_TARGET)}
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-q"], cwd=KUBERS_SRC, env=env, check=True
    )
    built = KUBERS_TARGET / "release" / "kubers-peer"
    tmp = KUBERS_BIN.with_suffix(".tmp")
    tmp.write_bytes(built.read_bytes())
    tmp.chmod(0o755)
    tmp.replace(KUBERS_BIN)


def kubers_version() -> str:
    text = (KUBERS_SRC / "Cargo.toml").read_text()
    crates = []
    for name in ("kube", "k8s-openapi", "tokio"):
        m = re.search(rf'^{name} = .*?"=([^"]+)"', text, re.M)
        crates.append(f"{name} {m.group(1) if m else '?'}")
    return ", ".join(crates) + " (rustls)"


def ours_version() -> str:
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "trio_controller", "rust"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        f"trio-controller {metadata.version('trio-controller')} ({sha}{'+dirty' if dirty else ''})"
    )


def all_peers() -> dict[str, Peer]:
    peer = str(HERE / "peers")
    ours = ours_version()
    base = ", ".join([_v("httpx"), _v("orjson"), _v("trio")])
    # client-go's example uses a streaming list (WatchListClient, on by default since 1.35)
    # unless told not to; the main rows compare list+watch (pages of 500) for everyone.
    cg_env = {"KUBE_FEATURE_WatchListClient": "false"}
    peers = [
        Peer("ours", [PY, f"{peer}/ours.py", "{kc}"], ours),
        Peer("ours-4w", [PY, f"{peer}/ours.py", "{kc}", "--workers", "4"], ours),
        Peer("ours-nostrip", [PY, f"{peer}/ours.py", "{kc}", "--no-strip"], ours),
        Peer("ours-watchlist", [PY, f"{peer}/ours.py", "{kc}", "--streaming-list"], ours),
        Peer("ours-lz4", [PY, f"{peer}/ours.py", "{kc}", "--compress"], ours),
        Peer("client-go", [str(CLIENTGO_BIN), "-kubeconfig", "{kc}"], clientgo_version(), cg_env),
        Peer("client-go-watchlist", [str(CLIENTGO_BIN), "-kubeconfig", "{kc}"], clientgo_version()),
        Peer("kube-rs", [str(KUBERS_BIN), "{kc}"], kubers_version()),
        Peer("pyref", [PY, f"{peer}/pyref.py", "{kc}"], base),
        Peer("pyref-4w", [PY, f"{peer}/pyref.py", "{kc}", "--workers", "4"], base),
        Peer("pyref-strip", [PY, f"{peer}/pyref.py", "{kc}", "--strip"], base),
        Peer("lightkube", [PY, f"{peer}/lightkube_peer.py", "{kc}"], _v("lightkube")),
        Peer("official", [PY, f"{peer}/official.py", "{kc}"], _v("kubernetes")),
        Peer(
            "official-orjson",
            [PY, f"{peer}/official.py", "{kc}", "--raw"],
            f"{_v('kubernetes')}, {_v('orjson')}",
        ),
        Peer(
            "kubernetes_asyncio", [PY, f"{peer}/k8s_asyncio.py", "{kc}"], _v("kubernetes_asyncio")
        ),
        Peer("kr8s", [PY, f"{peer}/kr8s_peer.py", "{kc}"], _v("kr8s")),
    ]
    return {p.name: p for p in peers}


DESCRIPTIONS = {
    "ours": "trio-controller's pod_controller (the CLI's code), 1 worker, list+watch",
    "ours-4w": "the same, 4 workers",
    "ours-watchlist": "the same, synced by a streaming list (sendInitialEvents)",
    "ours-lz4": "the same, cache LZ4-compressed (the CLI's --compress-cache)",
    "client-go-watchlist": "client-go's example as shipped (WatchListClient on)",
    "ours-nostrip": "trio-controller in-process, managedFields kept",
    "client-go": "client-go's examples/workqueue (Go), 1 worker (hard-coded), list+watch",
    "kube-rs": "kube-rs watcher + reflector store + a de-duplicating queue, 1 worker (Rust)",
    "bare-reader": "streamserver read: HTTP/1.1 + chunked decoding + newline count (Go)",
    "pyref": "our pipeline in pure Python: httpx + orjson + dict cache + Python queue",
    "pyref-4w": "the same, 4 workers",
    "pyref-strip": "the same, managedFields dropped before caching",
    "lightkube": "lightkube sync Client.list(chunk_size=500) + watch, models",
    "official": "kubernetes: list_namespaced_pod pages + watch.Watch, models",
    "official-orjson": "kubernetes: _preload_content=False + orjson dicts",
    "kubernetes_asyncio": "kubernetes_asyncio: list pages + watch.Watch, models",
    "kr8s": "kr8s asyncio: api.get (pages of 100) + api.watch",
}
