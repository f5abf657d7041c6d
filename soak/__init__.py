"""A chaos soak of the `trio-controller` CLI on a real kube-apiserver (issue 11, part 1):
writers churn pods towards a known final state while a fault proxy, apiserver crashes,
real 410s and 429s and controller restarts happen; the checker's verdict is one line.
See soak/run.py."""
