"""jaxdepth: the implicit bias of depth, measured in JAX."""

__version__ = "0.1.0"
