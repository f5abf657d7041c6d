"""Admission and conversion webhooks served over HTTPS from the Trio loop.

    from trio_controller.runtime.webhooks import WebhookServer, allow, deny

    server = WebhookServer(":9443", cert_dir)
    server.add_validating("example.com", "v1", "Widget", validate)
    await nursery.start(server.run)

server.py serves (paths, limits, metrics); admission.py is the AdmissionReview and the
handlers' answers; conversion.py the ConversionReview and converters; patch.py the JSON
patch of a mutating answer; certs.py the certificate files re-read when they change.
"""

from trio_controller.runtime.webhooks.admission import (
    AdmissionRequest,
    Verdict,
    allow,
    deny,
    patched,
)
from trio_controller.runtime.webhooks.certs import DEFAULT_CERT_DIR, CertWatcher
from trio_controller.runtime.webhooks.conversion import ConversionFailed, Converters
from trio_controller.runtime.webhooks.server import (
    CONVERT_PATH,
    WebhookServer,
    mutating_path,
    validating_path,
    webhook_server_from_args,
)

__all__ = [
    "CONVERT_PATH",
    "DEFAULT_CERT_DIR",
    "AdmissionRequest",
    "CertWatcher",
    "ConversionFailed",
    "Converters",
    "Verdict",
    "WebhookServer",
    "allow",
    "deny",
    "mutating_path",
    "patched",
    "validating_path",
    "webhook_server_from_args",
]
