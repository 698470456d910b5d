"""The Flower App directory (pyproject.toml + the `sgfl` package) that `flwr run` builds into a FAB."""
