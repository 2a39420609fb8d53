"""Settings from the environment and the ritual file (``tend.toml``)."""
