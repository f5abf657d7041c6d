"""Resources and the verbs on them: names, discovery, get/list/create/patch/apply/delete."""

from trio_controller.api.discovery import Discovery, ResourceNotFound, split_api_version
from trio_controller.api.resource import (
    CONFIGMAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    DEPLOYMENTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    PODS,
    SECRETS,
    SERVICES,
    Resource,
)
from trio_controller.api.verbs import Api, ObjectList, PatchType, PropagationPolicy

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
    "Api",
    "Discovery",
    "ObjectList",
    "PatchType",
    "PropagationPolicy",
    "Resource",
    "ResourceNotFound",
    "split_api_version",
]
