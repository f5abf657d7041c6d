"""Issue 15's contract for the widget example, end to end: `python
examples/widget_operator.py --webhook-bind-address 127.0.0.1:PORT --webhook-cert-dir DIR`
as a child process, on a control plane of the test's own, with everything installed the
way an independent user would: a serving certificate for 127.0.0.1 from a CA of the
test's own (RSA, PKCS#1 key, as cert-manager writes it) in DIR, the two-version CRD with
its conversion webhook, and the validating and mutating webhook configurations, all
pointing at `https://127.0.0.1:PORT/...` with that CA, installed before the example starts
(the example uses the CRD it finds). Everything is checked through the apiserver."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from test_widget_operator_e2e import EXAMPLE, scrape, served_at, value

from trio_controller.testing import EnvTest, OperatorProcess, open_envtest, run_operator

CRD_FILE = Path(__file__).resolve().parents[2] / "examples" / "widget-crd.yaml"
V1 = "/apis/example.com/v1/namespaces/default/widgets"
ALPHA = "/apis/example.com/v1alpha1/namespaces/default/widgets"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
VALIDATE = "/validate-example-com-v1-widget"
MUTATE = "/mutate-example-com-v1-widget"


# -- the test's own PKI --------------------------------------------------------------------


def _certificate(
    subject: str, issuer: x509.Name | None, key: rsa.RSAPrivateKey, signer: rsa.RSAPrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def write_serving_cert(cert_dir: Path) -> bytes:
    """A CA and a serving certificate for 127.0.0.1 signed by it, as `tls.crt` and
    `tls.key` in `cert_dir`; the CA's PEM."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (
        _certificate("widget-test-ca", None, ca_key, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        _certificate("127.0.0.1", ca.subject, key, ca_key)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_dir.mkdir(parents=True, exist_ok=True)
    (cert_dir / "tls.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (cert_dir / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # BEGIN RSA PRIVATE KEY
            serialization.NoEncryption(),
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- what the test installs ----------------------------------------------------------------


def client_config(port: int, path: str, ca_pem: bytes) -> dict[str, Any]:
    return {"url": f"https://127.0.0.1:{port}{path}", "caBundle": base64.b64encode(ca_pem).decode()}


def two_version_crd(port: int, ca_pem: bytes) -> dict[str, Any]:
    """examples/widget-crd.yaml (v1 stored, v1alpha1 served) converting through /convert."""
    crd: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    assert {v["name"] for v in crd["spec"]["versions"]} == {"v1", "v1alpha1"}
    crd["spec"]["conversion"] = {
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": client_config(port, "/convert", ca_pem),
        },
    }
    return crd


def webhook_configuration(kind: str, name: str, path: str, port: int, ca: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": name,
                "clientConfig": client_config(port, path, ca),
                "rules": [
                    {
                        "apiGroups": ["example.com"],
                        "apiVersions": ["v1"],
                        "resources": ["widgets"],
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                    }
                ],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }
        ],
    }


@dataclass
class Setup:
    env: EnvTest
    http: httpx.AsyncClient  # the admin, on the apiserver
    operator: OperatorProcess
    metrics_url: str


async def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def _established(http: httpx.AsyncClient) -> None:
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"
    with trio.fail_after(30):
        while True:
            conditions = ((await _ok(await http.get(path))).get("status") or {}).get(
                "conditions"
            ) or ()
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return
            await trio.sleep(0.1)


@asynccontextmanager
async def widget_operator_with_webhooks(tmp_path: Path) -> AsyncIterator[Setup]:
    """A control plane of our own with the CRD and both webhook configurations installed,
    then the example serving them; its metrics URL."""
    port = free_port()
    cert_dir = tmp_path / "certs"
    ca = write_serving_cert(cert_dir)
    async with (
        open_envtest(work_dir=tmp_path / "envtest") as env,
        httpx.AsyncClient(
            base_url=env.server, verify=env.info.ssl_context(client_cert=True), timeout=30
        ) as http,
    ):
        await _ok(
            await http.post(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                json=two_version_crd(port, ca),
            )
        )
        await _established(http)
        admission = "/apis/admissionregistration.k8s.io/v1"
        for kind, name, path in (
            ("ValidatingWebhookConfiguration", "vwidget.example.com", VALIDATE),
            ("MutatingWebhookConfiguration", "mwidget.example.com", MUTATE),
        ):
            body = webhook_configuration(kind, name, path, port, ca)
            await _ok(await http.post(f"{admission}/{kind.lower()}s", json=body))
        async with run_operator(
            EXAMPLE, "--kubeconfig", env.admin_kubeconfig, "--namespace", "default",
            "--webhook-bind-address", f"127.0.0.1:{port}", "--webhook-cert-dir", cert_dir,
            "--metrics-bind-address", "127.0.0.1:0",
        ) as operator:  # fmt: skip
            await operator.wait_for_stderr("Serving webhooks", within=60)
            await operator.wait_for_stderr("Caches are synced", within=60)
            yield Setup(env, http, operator, await served_at(operator, "/metrics"))
        assert "Traceback" not in "\n".join(operator.stderr), operator


def widget(api_version: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "Widget", "metadata": {"name": name}, "spec": spec}


async def create(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST; while the apiserver has not yet picked up a webhook configuration or the
    server's first connection fails, again."""
    with trio.fail_after(30):
        while True:
            response = await http.post(path, json=body)
            if response.status_code != 500 or "failed calling webhook" not in response.text:
                return response
            await trio.sleep(0.1)


async def eventually_get(
    http: httpx.AsyncClient, path: str, check: Any, what: str, within: float = 20
) -> dict[str, Any]:
    with trio.move_on_after(within):
        while True:
            response = await http.get(path)
            if response.status_code == 200 and check(response.json()):
                return dict(response.json())
            await trio.sleep(0.1)
    raise AssertionError(f"timed out after {within:g}s waiting for {what}: {response.text}")


def ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


# -- the tests -------------------------------------------------------------------------------


async def test_the_example_validates_and_defaults_widgets_through_the_apiserver(
    tmp_path: Path,
) -> None:
    with trio.fail_after(150):
        async with widget_operator_with_webhooks(tmp_path) as setup:
            http, op = setup.http, setup.operator
            empty = await create(http, V1, widget("example.com/v1", "empty", {"message": ""}))
            missing = await http.post(V1, json=widget("example.com/v1", "none", {}))
            long = await http.post(
                V1, json=widget("example.com/v1", "long", {"message": "x" * 254})
            )
            many = await http.post(
                V1, json=widget("example.com/v1", "many", {"message": "hi", "replicas": 11})
            )
            negative = await http.post(
                V1, json=widget("example.com/v1", "neg", {"message": "hi", "replicas": -1})
            )
            for denied, field in (
                (empty, "spec.message: "),
                (missing, "spec.message: "),
                (long, "spec.message: "),
                (many, "spec.replicas: "),
                (negative, "spec.replicas: "),
            ):
                assert denied.status_code == 403, denied.text
                text = denied.json()["message"]
                assert 'admission webhook "vwidget.example.com" denied the request' in text
                assert field in text, text

            # Defaulting on create: spec.replicas 1 stored; a given value (0 too) kept.
            plain = await _ok(
                await http.post(V1, json=widget("example.com/v1", "plain", {"message": "hello"}))
            )
            assert plain["spec"] == {"message": "hello", "replicas": 1}
            stored = await _ok(await http.get(f"{V1}/plain"))
            assert stored["spec"] == {"message": "hello", "replicas": 1}
            zero = await _ok(
                await http.post(
                    V1, json=widget("example.com/v1", "zero", {"message": "z", "replicas": 0})
                )
            )
            assert zero["spec"]["replicas"] == 0
            longest = await http.post(
                V1, json=widget("example.com/v1", "longest", {"message": "y" * 253})
            )
            assert longest.status_code == 201, longest.text

            # The operator reconciles what was let in (its own writes pass the webhooks).
            await op.wait_for_stdout("Reconciled Widget default/plain")
            await eventually_get(http, f"{V1}/plain", ready, "plain to be Ready")
            configmap = await _ok(await http.get(f"{CONFIGMAPS}/plain-config"))
            assert configmap["data"] == {"message": "hello"}

            # Updates are validated too; defaulting is for creates only.
            bad_update = await http.patch(
                f"{V1}/plain",
                json={"spec": {"replicas": 12}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert bad_update.status_code == 403, bad_update.text
            assert "spec.replicas: " in bad_update.json()["message"]
            emptied = await http.patch(
                f"{V1}/plain",
                json={"spec": {"message": ""}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert emptied.status_code == 403 and "spec.message: " in emptied.json()["message"]
            removed = await _ok(
                await http.patch(
                    f"{V1}/plain",
                    json={"spec": {"replicas": None, "message": "changed"}},
                    headers={"Content-Type": "application/merge-patch+json"},
                )
            )
            assert removed["spec"] == {"message": "changed"}
            await eventually_get(
                http,
                f"{CONFIGMAPS}/plain-config",
                lambda cm: cm["data"] == {"message": "changed"},
                "the ConfigMap to follow the update",
            )

            # Deletes are always allowed (the finalizer lets the Widget go).
            deleted = await http.delete(f"{V1}/plain")
            assert deleted.status_code in (200, 202), deleted.text
            with trio.fail_after(20):
                while True:
                    if (await http.get(f"{V1}/plain")).status_code == 404:
                        break
                    await trio.sleep(0.1)

            # The webhook metrics on --metrics-bind-address.
            async with httpx.AsyncClient() as plain_http:
                samples = await scrape(plain_http, setup.metrics_url)
            requests = "controller_runtime_webhook_requests_total"
            assert value(samples, requests, webhook=VALIDATE, code="200") >= 10
            assert value(samples, requests, webhook=MUTATE, code="200") >= 3
            assert value(samples, "controller_runtime_webhook_latency_seconds_count",
                         webhook=VALIDATE) >= 10  # fmt: skip
            assert value(samples, "controller_runtime_webhook_requests_in_flight",
                         webhook=MUTATE) == 0  # fmt: skip


async def test_a_v1alpha1_widget_is_reconciled_as_v1_and_reads_back_as_v1alpha1(
    tmp_path: Path,
) -> None:
    with trio.fail_after(150):
        async with widget_operator_with_webhooks(tmp_path) as setup:
            http, op = setup.http, setup.operator
            created = await create(
                http, ALPHA, widget("example.com/v1alpha1", "old", {"text": "from alpha"})
            )
            assert created.status_code == 201, created.text
            assert created.json()["apiVersion"] == "example.com/v1alpha1"
            assert created.json()["spec"] == {"text": "from alpha", "replicas": 1}  # defaulted

            # Reconciled as v1: the ConfigMap holds the text, the line is printed.
            await op.wait_for_stdout("Reconciled Widget default/old")
            configmap = await eventually_get(
                http, f"{CONFIGMAPS}/old-config", lambda cm: True, "old's ConfigMap"
            )
            assert configmap["data"] == {"message": "from alpha"}
            as_v1 = await eventually_get(http, f"{V1}/old", ready, "old to be Ready")
            assert as_v1["apiVersion"] == "example.com/v1"
            assert as_v1["spec"] == {"message": "from alpha", "replicas": 1}

            # Reads back as v1alpha1, every other field kept (status, finalizer, uid).
            as_alpha = await _ok(await http.get(f"{ALPHA}/old"))
            assert as_alpha["apiVersion"] == "example.com/v1alpha1"
            assert as_alpha["spec"] == {"text": "from alpha", "replicas": 1}
            assert as_alpha["status"] == as_v1["status"]
            assert as_alpha["metadata"]["uid"] == as_v1["metadata"]["uid"]
            assert as_alpha["metadata"]["finalizers"] == ["example.com/cleanup"]
            listed = await _ok(await http.get(ALPHA))
            assert [i["spec"] for i in listed["items"]] == [{"text": "from alpha", "replicas": 1}]

            # A change through v1alpha1 reaches the ConfigMap; an invalid one is refused.
            await _ok(
                await http.patch(
                    f"{ALPHA}/old",
                    json={"spec": {"text": "changed in alpha", "replicas": 4}},
                    headers={"Content-Type": "application/merge-patch+json"},
                )
            )
            await eventually_get(
                http,
                f"{CONFIGMAPS}/old-config",
                lambda cm: cm["data"] == {"message": "changed in alpha"},
                "the ConfigMap to follow the v1alpha1 change",
            )
            assert (await _ok(await http.get(f"{V1}/old")))["spec"] == {
                "message": "changed in alpha",
                "replicas": 4,
            }
            refused = await http.post(
                ALPHA, json=widget("example.com/v1alpha1", "blank", {"text": ""})
            )
            assert refused.status_code == 403, refused.text
            # (matchPolicy Equivalent: the v1 webhook gets the object converted to v1)
            assert "spec.message: " in refused.json()["message"], refused.text
            async with httpx.AsyncClient() as plain_http:
                samples = await scrape(plain_http, setup.metrics_url)
            assert (
                value(samples, "controller_runtime_webhook_requests_total",
                      webhook="/convert", code="200") >= 1
            )  # fmt: skip
