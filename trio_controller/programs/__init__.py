"""Programs built on the library, outside its core: the pod program (`trio-controller`)."""
