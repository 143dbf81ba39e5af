"""Small example models a user can copy: ``flax_mlp`` (a flax linen MLP that follows
the calling convention of the ``flax`` family, jaxdepth/nets/flax_module.py)."""
