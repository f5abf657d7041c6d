"""The standard flags of a trio-controller program, spelled as the `trio-controller` CLI
spells them (and, where they have one, as controller-runtime and kube-controller-manager
do):

    --kubeconfig PATH  --context NAME  --master URL
    -n/--namespace NS | -A/--all-namespaces      --workers N
    -v/--v N   --logging-format text|json
    --metrics-bind-address HOST:PORT   --health-probe-bind-address HOST:PORT  (0: off)
    --leader-elect  --leader-elect-resource-name NAME  --leader-elect-resource-namespace NS
    --leader-elect-lease-duration S  --leader-elect-renew-deadline S
    --leader-elect-retry-period S
    --cache-sync-timeout S (120; 0 waits forever)
    --graceful-shutdown-timeout S (30; negative waits forever)
    --webhook-bind-address HOST:PORT (off unless given)  --webhook-cert-dir DIR
    --controller-ring NAME  --shard-name NAME  --shard-lease-namespace NS (sharding)
    --version

`add_flags(parser)` adds them to a program's own `argparse` parser; the parsed
`Namespace` is what `Manager.from_args` reads. Nothing is imported here that a program's
`--version` does not need (not even argparse, which the program imports itself).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from trio_controller._native import __version__

if TYPE_CHECKING:
    import argparse

__all__ = [
    "CACHE_SYNC_TIMEOUT",
    "DEFAULT_WEBHOOK_CERT_DIR",
    "GRACEFUL_SHUTDOWN_TIMEOUT",
    "add_flags",
    "add_shard_flags",
    "add_webhook_flags",
    "bind_address",
    "non_negative_float",
    "positive_int",
]

CACHE_SYNC_TIMEOUT = 120.0  # controller-runtime's default CacheSyncTimeout
GRACEFUL_SHUTDOWN_TIMEOUT = 30.0  # controller-runtime's default GracefulShutdownTimeout
#: controller-runtime's: `filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")`.
DEFAULT_WEBHOOK_CERT_DIR = os.path.join(
    os.environ.get("TMPDIR") or "/tmp", "k8s-webhook-server", "serving-certs"
)


def positive_int(text: str) -> int:
    """An argparse type: an integer of 1 or more."""
    import argparse

    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    import argparse

    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be a number of seconds, 0 or more")
    return value


def bind_address(text: str) -> tuple[str | None, int] | None:
    """An argparse type: `HOST:PORT`, `:PORT` (every interface) or `0` (off: None)."""
    import argparse

    from trio_controller.observe.serving import parse_bind_address

    try:
        return parse_bind_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_flags(
    parser: argparse.ArgumentParser,
    *,
    leader_elect_resource_name: str = "trio-controller",
    version: str | None = None,
    leader_elect: bool = False,
    shard_flags: bool = True,
) -> argparse.ArgumentParser:
    """Add the standard flags to `parser` (and return it).

    `leader_elect_resource_name` is the default name of the Lease; `version` what
    `--version` prints (default: `<prog> <trio-controller's version>`). A program whose
    replicas must elect a leader passes `leader_elect=True`: the flag is then on by
    default and `--no-leader-elect` turns it off. `shard_flags=False` leaves out the
    sharding flags (a program that cannot be a shard, such as the sharder)."""
    import argparse

    p = parser
    p.add_argument("--kubeconfig", metavar="PATH", help="path to a kubeconfig file (must exist)")
    p.add_argument("--context", metavar="NAME", help="the kubeconfig context to use")
    p.add_argument("--master", metavar="URL", help="the API server URL (overrides the kubeconfig)")
    ns = p.add_mutually_exclusive_group()
    ns.add_argument("-n", "--namespace", metavar="NS", help="the namespace to watch")
    ns.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    p.add_argument(
        "--workers", type=positive_int, default=1, metavar="N", help="worker tasks (default 1)"
    )
    le = p.add_argument_group("leader election (kube-controller-manager's flags)")
    le.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction if leader_elect else "store_true",
        default=leader_elect,
        help="run only while holding a coordination.k8s.io Lease (one active replica); "
        "the others keep their caches warm and take over when it is released or expires"
        + (" (default: on)" if leader_elect else ""),
    )
    le.add_argument(
        "--leader-elect-resource-name",
        default=leader_elect_resource_name,
        metavar="NAME",
        help=f"the Lease's name (default {leader_elect_resource_name})",
    )
    le.add_argument(
        "--leader-elect-resource-namespace",
        metavar="NS",
        help="where the Lease lives (default: the watched namespace, else default)",
    )
    le.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="S")
    le.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="S")
    le.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="S")
    p.add_argument(
        "--cache-sync-timeout",
        type=non_negative_float,
        default=CACHE_SYNC_TIMEOUT,
        metavar="SECONDS",
        help=f"give up (exit 1) if the cache has not synced by then; 0 waits forever "
        f"(default {CACHE_SYNC_TIMEOUT:g})",
    )
    p.add_argument(
        "--graceful-shutdown-timeout",
        type=float,
        default=GRACEFUL_SHUTDOWN_TIMEOUT,
        metavar="SECONDS",
        help="after SIGINT/SIGTERM, how long workers may finish their keys and events be "
        "sent before everything is cancelled; negative waits forever "
        f"(default {GRACEFUL_SHUTDOWN_TIMEOUT:g})",
    )
    ob = p.add_argument_group("observability (controller-runtime's flags)")
    ob.add_argument(
        "--metrics-bind-address",
        type=bind_address,
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (:PORT for every "
        "interface; default 0: off)",
    )
    ob.add_argument(
        "--health-probe-bind-address",
        type=bind_address,
        default=None,
        metavar="HOST:PORT",
        help="serve /healthz and /readyz on HOST:PORT (default 0: off)",
    )
    ob.add_argument(
        "--logging-format",
        choices=("text", "json"),
        default="text",
        help="text: klog's lines (default); json: one JSON object per line",
    )
    ob.add_argument(
        "-v",
        "--v",
        dest="verbosity",
        type=int,
        default=0,
        metavar="N",
        help="klog verbosity: 2 relists and watch restarts, 4 list pages, resourceVersions, "
        "bookmarks and tracebacks, 6 every request",
    )
    add_webhook_flags(p)
    if shard_flags:
        add_shard_flags(p)
    p.add_argument("--version", action="version", version=version or f"{p.prog} {__version__}")
    return p


def webhook_address(text: str) -> str | None:
    """An argparse type: a webhook server's `HOST:PORT` or `:PORT`; `0` is off (None)."""
    import argparse

    from trio_controller.observe.serving import parse_bind_address

    try:
        return None if parse_bind_address(text) is None else text
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_webhook_flags(parser: argparse.ArgumentParser) -> None:
    """`--webhook-bind-address HOST:PORT` (off unless given) and `--webhook-cert-dir DIR`
    (controller-runtime's names: `tls.crt` and `tls.key`, re-read when they change)."""
    wh = parser.add_argument_group("webhooks (controller-runtime's flags)")
    wh.add_argument(
        "--webhook-bind-address",
        type=webhook_address,
        default=None,
        metavar="HOST:PORT",
        help="serve the program's admission and conversion webhooks over HTTPS here "
        "(off unless given)",
    )
    wh.add_argument(
        "--webhook-cert-dir",
        default=DEFAULT_WEBHOOK_CERT_DIR,
        metavar="DIR",
        help="folder holding tls.crt and tls.key, re-read when they change "
        f"(default {DEFAULT_WEBHOOK_CERT_DIR})",
    )


def add_shard_flags(parser: argparse.ArgumentParser) -> None:
    """`--controller-ring NAME`, `--shard-name NAME`, `--shard-lease-namespace NS`."""
    group = parser.add_argument_group("sharding (kubernetes-controller-sharding's protocol)")
    group.add_argument(
        "--controller-ring",
        metavar="NAME",
        help="run as one shard of this ControllerRing: reconcile only the objects the "
        "sharder assigns to this shard (default: not sharded)",
    )
    group.add_argument(
        "--shard-name",
        metavar="NAME",
        help="this shard's name, its Lease's name and holderIdentity (default: $POD_NAME, "
        "else the hostname)",
    )
    group.add_argument(
        "--shard-lease-namespace",
        metavar="NS",
        help="where the shard Lease lives (default: the pod's namespace in a cluster, "
        "else the kubeconfig context's, else default)",
    )
