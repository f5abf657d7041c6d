"""The pod program: client-go's workqueue example as the `trio-controller` command."""
