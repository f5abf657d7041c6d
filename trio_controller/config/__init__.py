"""Where to connect and as whom: kubeconfig loading rules, in-cluster, `ClusterConfig`."""

from trio_controller.config.cluster import ClusterConfig, TLSConfig
from trio_controller.config.kubeconfig import IN_CLUSTER_DIR, in_cluster_config, load_config

__all__ = ["IN_CLUSTER_DIR", "ClusterConfig", "TLSConfig", "in_cluster_config", "load_config"]
