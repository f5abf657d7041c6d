"""`trio-controller-sharder`: the sharder of kubernetes-controller-sharding's protocol.

ring.py (the consistent-hash ring and hash keys), leases.py (shard Lease states),
leasekeeper.py (the shard Lease controller), crd.py (the ControllerRing CRD),
sharder.py (assignment, drains and moves), cli.py (the command). The shard side, which
a sharded controller runs, is `trio_controller.runtime.sharding`.
"""
