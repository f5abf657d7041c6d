"""Syncing an informer with a streaming list never imports httpx (issue 17, start-up):
watches go through the owned transport, and the Client makes its httpx client on the
first ordinary request. Checked in a fresh interpreter against the real apiserver."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from trio_controller.testing import EnvInfo, PodHelper

HTTP_CLIENT = ("httpx", "httpcore", "h11", "h2")

PROBE = textwrap.dedent(
    """
    import sys
    import trio
    from trio_controller import PODS, Client, Informer, InformerOptions, load_config

    async def main(kubeconfig, namespace, paged):
        async with Client(load_config(kubeconfig)) as client:
            options = InformerOptions(streaming_list=not paged)
            informer = Informer(client, PODS, options, namespace=namespace)
            async with trio.open_nursery() as nursery:
                await nursery.start(informer.run)
                await informer.wait_for_cache_sync()
                synced = len(informer.store)
                before = [m for m in {http!r} if m in sys.modules]
                await client.request_json("GET", "/version")  # an ordinary request
                after = [m for m in {http!r} if m in sys.modules]
                nursery.cancel_scope.cancel()
        print(synced, ",".join(before) or "-", ",".join(after) or "-")

    trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3] == "paged")
    """
).format(http=HTTP_CLIENT)


def probe(envtest: EnvInfo, namespace: str, mode: str) -> tuple[int, set[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(envtest.admin_kubeconfig), namespace, mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    synced, before, after = done.stdout.split()
    return int(synced), set(before.split(",")) - {"-"}, set(after.split(",")) - {"-"}


async def test_a_streaming_list_syncs_without_importing_the_http_client(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    for name in ("a", "b", "c"):
        await pods.create_pod(namespace, name)
    synced, before, after = probe(envtest, namespace, "streaming")
    assert synced == 3
    assert before == set()  # the list and watch went through the owned transport
    assert {"httpx", "h11"} <= after  # the first ordinary request brings httpx in


async def test_a_paged_list_syncs_through_httpx_made_on_its_first_page(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    await pods.create_pod(namespace, "a")
    synced, before, _ = probe(envtest, namespace, "paged")
    assert synced == 1
    assert "httpx" in before
