"""Deterministic simulation of the reflector, workqueue and controller (issue 11, part 2).

model.py    the apiserver's state: objects, one resourceVersion counter, history with
            compaction, paged lists with continue tokens, watch events, Status bodies
wire.py     the model on the wire: watch responses written byte by byte on a Trio
            stream (HTTP/1.1, one chunk per event), list pages through an httpx
            transport, each with the faults the schedule chose
faults.py   the seeded fault schedule and the writers' plan, from one random.Random
run.py      one seed: run, quiesce, converge, check the invariants; the CLI
sharded.py  the sharded mode (`--sharded`): real shards and the real sharder over
            shardmodel.py (Widgets' metadata and Leases, an HTTP-free client), with
            joins, leaves, kills, partitions and sharder failovers by seed
"""
