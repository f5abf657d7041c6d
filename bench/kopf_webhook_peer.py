"""The benchmark's kopf peer (kopf 1.45, run from its own virtualenv: kopf pins aiohttp
and friends that trio-controller does not need): kopf's own admission server
(`kopf.WebhookServer`, aiohttp over TLS) and kopf's admission engine
(`serve_admission_request`: the registry, the handler, the response) with one
`@kopf.on.validate` handler checking the same two fields as the other peers. Only the
Kubernetes API connection of a full `kopf.run` is left out (nothing here needs it).

    /tmp/kopf-venv/bin/python bench/kopf_webhook_peer.py PORT CERT_DIR
"""

from __future__ import annotations

import asyncio
import functools
import sys
from pathlib import Path
from typing import Any

import kopf
from kopf._cogs.structs import ephemera, references
from kopf._core.engines import admission
from kopf._core.reactor import inventory

registry = kopf.OperatorRegistry()


@kopf.on.validate("example.com", "v1", "widgets", registry=registry)
def check_widget(spec: Any, operation: str, **_: Any) -> None:
    if operation == "DELETE":
        return
    message = spec.get("message")
    if not isinstance(message, str) or not message:
        raise kopf.AdmissionError("spec.message: must be a non-empty string")
    if len(message) > 253:
        raise kopf.AdmissionError("spec.message: must be at most 253 characters")
    if "replicas" in spec:
        replicas = spec["replicas"]
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise kopf.AdmissionError("spec.replicas: must be an integer from 0 to 10")
        if not 0 <= replicas <= 10:
            raise kopf.AdmissionError(f"spec.replicas: must be from 0 to 10, not {replicas}")


async def main(port: int, cert_dir: Path) -> None:
    insights = references.Insights()
    insights.webhook_resources.add(
        references.Resource(group="example.com", version="v1", plural="widgets", kind="Widget")
    )
    fn = functools.partial(
        admission.serve_admission_request,
        settings=kopf.OperatorSettings(),
        memories=inventory.ResourceMemories(),
        memobase=ephemera.Memo(),
        registry=registry,
        insights=insights,
        indices={},
    )
    server = kopf.WebhookServer(
        addr="127.0.0.1",
        port=port,
        certfile=str(cert_dir / "tls.crt"),
        pkeyfile=str(cert_dir / "tls.key"),
    )
    async for _ in server(fn):
        print("ready", flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2])))
