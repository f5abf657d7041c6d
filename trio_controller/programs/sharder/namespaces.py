"""A ControllerRing's `spec.namespaceSelector`: which namespaces' objects the ring shards.

    selector = NamespaceSelector.parse({"matchLabels": {"team": "a"}})   # None: all
    selector.matches({"team": "a", "kubernetes.io/metadata.name": "ns1"})  # True

A metav1.LabelSelector: `matchLabels` and `matchExpressions` (In, NotIn, Exists,
DoesNotExist), all of which must hold; an empty selector matches every namespace. As in
the original sharder, only objects in selected namespaces are assigned or moved;
cluster-scoped objects are always sharded. A selector the apiserver would reject is a
`ValueError` with one line saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NamespaceSelector"]

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class NamespaceSelector:
    """A parsed label selector: `labels` must all be equal, every requirement
    `(key, operator, values)` must hold."""

    labels: tuple[tuple[str, str], ...] = ()
    requirements: tuple[tuple[str, str, frozenset[str]], ...] = ()

    @classmethod
    def parse(cls, spec: Any) -> NamespaceSelector | None:
        """The selector of `spec` (the `namespaceSelector` field); None when absent."""
        if spec is None:
            return None
        if not isinstance(spec, Mapping):
            raise ValueError("namespaceSelector must be an object")
        labels = spec.get("matchLabels") or {}
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ValueError("namespaceSelector.matchLabels must map strings to strings")
        requirements = []
        for i, expr in enumerate(spec.get("matchExpressions") or ()):
            where = f"namespaceSelector.matchExpressions[{i}]"
            if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str):
                raise ValueError(f"{where} needs a key")
            operator, values = expr.get("operator"), expr.get("values") or []
            if operator not in _OPERATORS:
                raise ValueError(f"{where}: operator {operator!r} is not one of {_OPERATORS}")
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{where}.values must be a list of strings")
            if operator in ("In", "NotIn") and not values:
                raise ValueError(f"{where}: {operator} needs values")
            if operator in ("Exists", "DoesNotExist") and values:
                raise ValueError(f"{where}: {operator} takes no values")
            requirements.append((expr["key"], operator, frozenset(values)))
        return cls(tuple(sorted(labels.items())), tuple(requirements))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether a namespace with `labels` is selected."""
        labels = labels or {}
        if any(labels.get(k) != v for k, v in self.labels):
            return False
        for key, operator, values in self.requirements:
            present = key in labels
            if operator == "In" and not (present and labels[key] in values):
                return False
            if operator == "NotIn" and present and labels[key] in values:
                return False
            if operator == "Exists" and not present:
                return False
            if operator == "DoesNotExist" and present:
                return False
        return True
