"""What runs a controller: the workqueue, the controller engine (reconcile loop), leader
election, events and finalizers. Built on cache/ (informers) and api/ (verbs)."""
