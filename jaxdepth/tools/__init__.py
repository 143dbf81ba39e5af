"""Maintenance tools that read finished runs (no training): ``python -m jaxdepth.tools.tables``."""
