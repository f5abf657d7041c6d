"""What a Kubernetes resource is called, and where it lives on the apiserver.

    PODS.path(namespace="default")              # /api/v1/namespaces/default/pods
    PODS.path(namespace="default", name="web", subresource="status")
    WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
    WIDGETS.path()                              # /apis/example.com/v1/widgets (all namespaces)

A `Resource` is plain data (group, version, plural, kind, scope), the one value every
part of the runtime names a resource by: API verbs, informers, controllers, logs
(`*v1.Pod`, `*example.com/v1.Widget`). Discovery (api/discovery.py) builds one from a
group/version and a kind; the constants below are the core kinds, as the apiserver's
discovery documents them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "CONFIGMAPS",
    "CUSTOM_RESOURCE_DEFINITIONS",
    "DEPLOYMENTS",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "PODS",
    "SECRETS",
    "SERVICES",
    "Resource",
]


@dataclass(frozen=True)
class Resource:
    """One resource of one API group version.

    `group` is "" for the core group (served under /api), `plural` the lower-case name
    in paths, `namespaced` False for cluster-scoped resources.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """`v1` or `group/version`, as objects carry it."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def display(self) -> str:
        """The name client-go's logs use: `*v1.Pod`, `*example.com/v1.Widget`."""
        return f"*{self.api_version}.{self.kind}"

    def path(
        self,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """The URL path: the collection (all namespaces when `namespace` is None), one
        object (`name`), or one of its subresources (`status`, `scale`)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None:
            if not self.namespaced:
                raise ValueError(f"{self.kind} is cluster-scoped: it has no namespace")
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource is not None:
                base += f"/{subresource}"
        elif subresource is not None:
            raise ValueError("a subresource needs an object name")
        return base


PODS = Resource("", "v1", "pods", "Pod")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
SERVICES = Resource("", "v1", "services", "Service")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
EVENTS = Resource("events.k8s.io", "v1", "events", "Event")
CUSTOM_RESOURCE_DEFINITIONS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
    namespaced=False,
)  # fmt: skip
