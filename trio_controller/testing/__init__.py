"""A real kube-apiserver and etcd on loopback for tests (the equivalent of envtest).

    from trio_controller.testing import open_envtest, open_pod_helper

    async with open_envtest() as env, open_pod_helper(env.info) as pods:
        await pods.create_pod("default", "web")

``python -m trio_controller.testing --kubeconfig-out PATH`` runs one in the foreground.
``run_operator(program, kubeconfig=env.admin_kubeconfig)`` runs an operator program as a
child process, reading its output lines and sending it SIGTERM (testing/operator.py);
``eventually(check, what)`` polls until the cluster shows something (testing/polling.py).
"""

from trio_controller.testing._assets import AssetsNotFound, find_assets
from trio_controller.testing._pki import ServingCert, write_serving_cert
from trio_controller.testing._webhooks import WebhookInstallError, WebhookInstallOptions
from trio_controller.testing.envtest import EnvTest, EnvTestError, open_envtest
from trio_controller.testing.info import TOKEN_USER, EnvInfo
from trio_controller.testing.operator import OperatorProcess, run_operator
from trio_controller.testing.pods import PodHelper, open_pod_helper, pod_manifest
from trio_controller.testing.polling import eventually
from trio_controller.testing.watching import WatchEvent, about, read_events_until

__all__ = [
    "TOKEN_USER",
    "AssetsNotFound",
    "EnvInfo",
    "EnvTest",
    "EnvTestError",
    "OperatorProcess",
    "PodHelper",
    "ServingCert",
    "WatchEvent",
    "WebhookInstallError",
    "WebhookInstallOptions",
    "about",
    "eventually",
    "find_assets",
    "open_envtest",
    "open_pod_helper",
    "pod_manifest",
    "read_events_until",
    "run_operator",
    "write_serving_cert",
]
