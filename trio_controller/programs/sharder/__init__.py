"""`trio-controller-sharder`: the sharder of kubernetes-controller-sharding's protocol.

ring.py (the consistent-hash ring and hash keys), leases.py (shard Lease states),
leasekeeper.py (the shard Lease controller), crd.py (the ControllerRing CRD),
moves.py (what to do with one object, the label writes, resyncs), sharder.py (the
ring and Lease controllers and the assigners), cli.py (the command). The shard side, which
a sharded controller runs, is `trio_controller.runtime.sharding`.
"""
