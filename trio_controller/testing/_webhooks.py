"""Webhooks installed into a test control plane (controller-runtime envtest's
WebhookInstallOptions): a serving certificate for 127.0.0.1, and webhook configurations
and CRD conversions pointed at the local webhook server with that CA.

    options = WebhookInstallOptions(validating=[vwc], mutating=[mwc], conversion_crds=[...])
    async with open_envtest(crds=[crd], webhook_install_options=options) as env:
        server = WebhookServer(options.bind_address, options.cert_dir)

Each webhook's `clientConfig` becomes `url: https://HOST:PORT<path>` (the path of its
`service`, or of its `url`) with the CA as `caBundle`; `sideEffects` defaults to None and
`admissionReviewVersions` to [v1]. A CRD named in `conversion_crds`, or whose
`spec.conversion.strategy` is already Webhook, gets a conversion webhook at `/convert`.
Configurations are created (or updated) once the apiserver is up and waited for until the
apiserver returns them.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
import yaml

from trio_controller.testing._pki import ServingCert, write_serving_cert
from trio_controller.testing._process import free_port
from trio_controller.testing.info import EnvInfo

__all__ = ["WebhookInstallError", "WebhookInstallOptions"]

WebhookSource = str | os.PathLike[str] | Mapping[str, Any]
ADMISSION_PATH = "/apis/admissionregistration.k8s.io/v1"
_PLURALS = {
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
}
_POLL_INTERVAL = 0.05


class WebhookInstallError(Exception):
    """A webhook configuration cannot be read, or the apiserver refused it."""


@dataclass
class WebhookInstallOptions:
    """What to install and where the local webhook server listens (see the module doc).

    After `open_envtest` starts: `port` is set (a free one when 0), `cert_dir` holds
    tls.crt/tls.key for `host`, `ca_pem` is the CA the apiserver trusts for them.
    """

    validating: Sequence[WebhookSource] = ()
    mutating: Sequence[WebhookSource] = ()
    conversion_crds: Sequence[str] = ()
    host: str = "127.0.0.1"
    port: int = 0
    cert_dir: Path | None = None
    serving_cert: ServingCert | None = field(default=None, init=False)

    @property
    def bind_address(self) -> str:
        """`HOST:PORT` for `WebhookServer(...)`."""
        return f"{self.host}:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        if self.serving_cert is None:
            raise RuntimeError("the serving certificate is written when open_envtest starts")
        return self.serving_cert.ca_pem

    def url(self, path: str) -> str:
        """`https://HOST:PORT<path>`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{path}"

    def rotate_certificate(self) -> ServingCert:
        """A new serving certificate in `cert_dir` from the same CA (in place, as
        cert-manager rotates it); the apiserver keeps trusting it."""
        assert self.cert_dir is not None
        self.serving_cert = write_serving_cert(self.cert_dir, (self.host, "localhost"))
        return self.serving_cert

    # -- used by open_envtest -----------------------------------------------------------
    def prepare(self, root: Path) -> None:
        """Pick the port, write the certificate (before anything starts)."""
        if self.port == 0:
            self.port = free_port()
        if self.cert_dir is None:
            self.cert_dir = root / "webhook-certs"
        self.serving_cert = write_serving_cert(Path(self.cert_dir), (self.host, "localhost"))

    def client_config(self, path: str) -> dict[str, Any]:
        return {"url": self.url(path), "caBundle": base64.b64encode(self.ca_pem).decode()}

    def configurations(self) -> list[dict[str, Any]]:
        """The webhook configurations to install, pointed at the local server."""
        out = []
        for kind, sources in (
            ("ValidatingWebhookConfiguration", self.validating),
            ("MutatingWebhookConfiguration", self.mutating),
        ):
            for document in _load(sources, kind):
                out.append(self._point(document))
        return out

    def _point(self, document: dict[str, Any]) -> dict[str, Any]:
        document = {**document, "apiVersion": "admissionregistration.k8s.io/v1"}
        webhooks = []
        for webhook in document.get("webhooks") or ():
            webhook = dict(webhook)
            config = webhook.get("clientConfig") or {}
            path = (config.get("service") or {}).get("path")
            if path is None and config.get("url"):
                path = urlsplit(config["url"]).path
            webhook["clientConfig"] = self.client_config(path or "/")
            webhook.setdefault("sideEffects", "None")
            webhook.setdefault("admissionReviewVersions", ["v1"])
            webhooks.append(webhook)
        document["webhooks"] = webhooks
        return document

    def convert_crds(self, crds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`crds` with the conversion webhooks asked for pointed at `/convert`."""
        out = []
        for crd in crds:
            spec = crd.get("spec") or {}
            name = (crd.get("metadata") or {}).get("name")
            conversion = spec.get("conversion") or {}
            if name in self.conversion_crds or conversion.get("strategy") == "Webhook":
                path = "/convert"
                existing = ((conversion.get("webhook") or {}).get("clientConfig") or {}).get(
                    "service"
                ) or {}
                path = existing.get("path") or path
                versions = (conversion.get("webhook") or {}).get("conversionReviewVersions")
                spec = {
                    **spec,
                    "conversion": {
                        "strategy": "Webhook",
                        "webhook": {
                            "conversionReviewVersions": versions or ["v1"],
                            "clientConfig": self.client_config(path),
                        },
                    },
                }
                crd = {**crd, "spec": spec}
            out.append(crd)
        return out


def _load(sources: Sequence[WebhookSource], kind: str) -> list[dict[str, Any]]:
    if isinstance(sources, str | os.PathLike | Mapping):
        sources = [sources]
    found: list[dict[str, Any]] = []
    for source in sources:
        if isinstance(source, Mapping):
            documents: list[Any] = [source]
        else:
            path = Path(source)
            try:
                documents = list(yaml.safe_load_all(path.read_text()))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
                raise WebhookInstallError(f"cannot read {kind} from {path}: {error}") from None
        matching = [dict(d) for d in documents if isinstance(d, Mapping) and d.get("kind") == kind]
        if not matching:
            raise WebhookInstallError(
                f"no {kind} in {source if not isinstance(source, Mapping) else 'the given dict'}"
            )
        found.extend(matching)
    return found


async def install_webhooks(
    info: EnvInfo, configurations: Sequence[Mapping[str, Any]], within: float
) -> None:
    """Create (or update) the configurations as the envtest admin; wait until served."""
    if not configurations:
        return
    async with httpx.AsyncClient(
        base_url=info.server, verify=info.ssl_context(client_cert=True), timeout=10.0
    ) as client:
        for document in configurations:
            await _create_or_update(client, document)
        with trio.move_on_after(within) as scope:
            for document in configurations:
                while True:
                    if (await client.get(_url(document))).status_code == 200:
                        break
                    await trio.sleep(_POLL_INTERVAL)
        if scope.cancelled_caught:
            raise WebhookInstallError(f"webhook configurations not served after {within:g} s")


def _url(document: Mapping[str, Any], *, collection: bool = False) -> str:
    base = f"{ADMISSION_PATH}/{_PLURALS[document['kind']]}"
    return base if collection else f"{base}/{document['metadata']['name']}"


async def _create_or_update(client: httpx.AsyncClient, document: Mapping[str, Any]) -> None:
    response = await client.post(_url(document, collection=True), json=document)
    if response.status_code == 409:
        current = await client.get(_url(document))
        if current.status_code == 200:
            metadata = {
                **document.get("metadata", {}),
                "resourceVersion": current.json()["metadata"]["resourceVersion"],
            }
            response = await client.put(_url(document), json={**document, "metadata": metadata})
    if not response.is_success:
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text
        name = (document.get("metadata") or {}).get("name")
        raise WebhookInstallError(
            f"{document['kind']} {name} refused: {response.status_code} {message}"
        )
