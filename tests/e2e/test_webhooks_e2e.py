"""Webhooks through a real kube-apiserver (testenv): open_envtest installs the Widget's
two-version CRD and webhook configurations pointed at our WebhookServer on 127.0.0.1 with
a CA of its own; the apiserver calls it over TLS for every write and every conversion."""

from __future__ import annotations

import ssl
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
import yaml

from trio_controller.runtime.webhooks import WebhookServer
from trio_controller.testing import EnvTest, WebhookInstallOptions, open_envtest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
from widget_webhooks import add_widget_webhooks  # noqa: E402

CRD_FILE = ROOT / "examples" / "widget-crd.yaml"
WIDGETS_V1 = "/apis/example.com/v1/namespaces/default/widgets"
WIDGETS_ALPHA = "/apis/example.com/v1alpha1/namespaces/default/widgets"
RULES = [
    {
        "apiGroups": ["example.com"],
        "apiVersions": ["v1"],
        "resources": ["widgets"],
        "operations": ["CREATE", "UPDATE", "DELETE"],
    }
]


def _configuration(kind: str, path: str, *, failure_policy: str = "Fail") -> dict[str, Any]:
    prefix = "v" if kind.startswith("Validating") else "m"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": f"{prefix}widget.example.com"},
        "webhooks": [
            {
                "name": f"{prefix}widget.example.com",
                "clientConfig": {"service": {"name": "x", "namespace": "x", "path": path}},
                "rules": RULES,
                "failurePolicy": failure_policy,
                "timeoutSeconds": 5,
            }
        ],
    }


def _options(*, failure_policy: str = "Fail") -> WebhookInstallOptions:
    return WebhookInstallOptions(
        validating=[
            _configuration(
                "ValidatingWebhookConfiguration",
                "/validate-example-com-v1-widget",
                failure_policy=failure_policy,
            )
        ],
        mutating=[
            _configuration(
                "MutatingWebhookConfiguration",
                "/mutate-example-com-v1-widget",
                failure_policy=failure_policy,
            )
        ],
        conversion_crds=["widgets.example.com"],
    )


@asynccontextmanager
async def _admin(env: EnvTest) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=env.server, verify=env.info.ssl_context(client_cert=True), timeout=15
    ) as client:
        yield client


def _widget(api_version: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "Widget", "metadata": {"name": name}, "spec": spec}


async def _create_when_webhooks_answer(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> httpx.Response:
    """Create, retrying while the apiserver has not yet picked up the configurations."""
    with trio.fail_after(20):
        while True:
            response = await client.post(path, json=body)
            if response.status_code != 500 or "failed calling webhook" not in response.text:
                return response
            await trio.sleep(0.1)


@asynccontextmanager
async def _widget_env(
    *, cert_poll_interval: float = 1.0
) -> AsyncIterator[tuple[EnvTest, WebhookServer, httpx.AsyncClient]]:
    options = _options()
    async with open_envtest(
        crds=[yaml.safe_load(CRD_FILE.read_text())], webhook_install_options=options
    ) as env:
        assert options.cert_dir is not None
        server = WebhookServer(
            options.bind_address, options.cert_dir, cert_poll_interval=cert_poll_interval
        )
        add_widget_webhooks(server)
        async with trio.open_nursery() as nursery, _admin(env) as client:
            await nursery.start(server.run)
            yield env, server, client
            nursery.cancel_scope.cancel()


async def test_a_denial_reaches_the_client_naming_the_field() -> None:
    async with _widget_env() as (_, _, client):
        empty = await _create_when_webhooks_answer(
            client, WIDGETS_V1, _widget("example.com/v1", "empty", {"message": ""})
        )
        too_many = await client.post(
            WIDGETS_V1, json=_widget("example.com/v1", "many", {"message": "hi", "replicas": 11})
        )
        fine = await client.post(
            WIDGETS_V1, json=_widget("example.com/v1", "fine", {"message": "hi", "replicas": 3})
        )
        deleted = await client.delete(f"{WIDGETS_V1}/fine")
    assert empty.status_code == 403, empty.text
    assert 'admission webhook "vwidget.example.com" denied the request' in empty.json()["message"]
    assert "spec.message: must be a non-empty string" in empty.json()["message"]
    assert too_many.status_code == 403
    assert "spec.replicas: must be from 0 to 10, not 11" in too_many.json()["message"]
    assert fine.status_code == 201, fine.text
    assert deleted.status_code == 200, deleted.text


async def test_a_widget_without_replicas_is_stored_with_one() -> None:
    async with _widget_env() as (_, _, client):
        created = await _create_when_webhooks_answer(
            client, WIDGETS_V1, _widget("example.com/v1", "plain", {"message": "hello"})
        )
        stored = await client.get(f"{WIDGETS_V1}/plain")
    assert created.status_code == 201, created.text
    assert stored.json()["spec"] == {"message": "hello", "replicas": 1}


async def test_a_v1alpha1_widget_reads_back_as_v1_and_as_v1alpha1() -> None:
    async with _widget_env() as (_, _, client):
        created = await _create_when_webhooks_answer(
            client,
            WIDGETS_ALPHA,
            _widget("example.com/v1alpha1", "old", {"text": "from alpha", "replicas": 2}),
        )
        await client.post(WIDGETS_V1, json=_widget("example.com/v1", "new", {"message": "from v1"}))
        as_v1 = await client.get(f"{WIDGETS_V1}/old")
        as_alpha = await client.get(f"{WIDGETS_ALPHA}/old")
        new_as_alpha = await client.get(f"{WIDGETS_ALPHA}/new")
        listed_v1 = await client.get(WIDGETS_V1)
        listed_alpha = await client.get(WIDGETS_ALPHA)
        rejected = await client.post(
            WIDGETS_ALPHA, json=_widget("example.com/v1alpha1", "blank", {"text": ""})
        )
    assert created.status_code == 201, created.text
    assert as_v1.json()["apiVersion"] == "example.com/v1"
    assert as_v1.json()["spec"] == {"message": "from alpha", "replicas": 2}
    assert as_alpha.json()["spec"] == {"text": "from alpha", "replicas": 2}
    assert as_alpha.json()["metadata"]["uid"] == as_v1.json()["metadata"]["uid"]
    assert new_as_alpha.json()["spec"] == {"text": "from v1", "replicas": 1}
    assert {i["metadata"]["name"]: i["spec"] for i in listed_v1.json()["items"]} == {
        "old": {"message": "from alpha", "replicas": 2},
        "new": {"message": "from v1", "replicas": 1},
    }
    assert {i["metadata"]["name"]: i["spec"] for i in listed_alpha.json()["items"]} == {
        "old": {"text": "from alpha", "replicas": 2},
        "new": {"text": "from v1", "replicas": 1},
    }
    assert rejected.status_code == 403
    assert "spec.message: must be a non-empty string" in rejected.json()["message"]


def _served_serial(port: int, ca_pem: bytes) -> int:
    import socket

    from cryptography import x509

    context = ssl.create_default_context(cadata=ca_pem.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_the_apiserver_keeps_calling_through_a_certificate_rotation() -> None:
    async with _widget_env(cert_poll_interval=0.05) as (env, server, client):
        options = env.webhook_install_options
        assert options is not None
        first = await _create_when_webhooks_answer(
            client, WIDGETS_V1, _widget("example.com/v1", "before", {"message": "a"})
        )
        before = await trio.to_thread.run_sync(_served_serial, options.port, options.ca_pem)
        rotated = options.rotate_certificate()
        rotated_pem = rotated.cert_file.read_bytes()
        with trio.fail_after(10):
            while True:
                if server.certs.reloads >= 1:
                    break
                await trio.sleep(0.05)
        after = await trio.to_thread.run_sync(_served_serial, options.port, options.ca_pem)
        names = [f"after-{i}" for i in range(5)]
        created = [
            await client.post(WIDGETS_V1, json=_widget("example.com/v1", n, {"message": "b"}))
            for n in names
        ]
        denied = await client.post(
            WIDGETS_V1, json=_widget("example.com/v1", "bad", {"message": "c", "replicas": -1})
        )
    from cryptography import x509

    assert first.status_code == 201
    assert after != before
    assert after == x509.load_pem_x509_certificate(rotated_pem).serial_number
    assert [r.status_code for r in created] == [201] * 5
    assert denied.status_code == 403 and "spec.replicas" in denied.json()["message"]


async def test_with_the_server_down_fail_refuses_writes_and_ignore_lets_them_in() -> None:
    options = _options()
    async with (
        open_envtest(
            crds=[yaml.safe_load(CRD_FILE.read_text())], webhook_install_options=options
        ) as env,
        _admin(env) as client,
    ):
        refused = await client.post(
            WIDGETS_V1, json=_widget("example.com/v1", "refused", {"message": "x"})
        )
        for plural in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
            url = f"/apis/admissionregistration.k8s.io/v1/{plural}"
            name = "vwidget.example.com" if plural.startswith("v") else "mwidget.example.com"
            patch = [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]
            patched = await client.patch(
                f"{url}/{name}",
                json=patch,
                headers={"Content-Type": "application/json-patch+json"},
            )
            assert patched.status_code == 200, patched.text
        with trio.fail_after(20):
            while True:
                let_in = await client.post(
                    WIDGETS_V1,
                    json=_widget("example.com/v1", f"in-{uuid.uuid4().hex[:6]}", {"message": ""}),
                )
                if let_in.status_code == 201:
                    break
                await trio.sleep(0.1)
    assert refused.status_code == 500, refused.text
    assert 'failed calling webhook "mwidget.example.com"' in refused.json()["message"]
    assert "connection refused" in refused.json()["message"]
    assert let_in.json()["spec"] == {"message": ""}  # neither defaulted nor validated
