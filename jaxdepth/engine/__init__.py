"""The sweep engine every experiment runs on.

  loop.py       segments + hooks (evaluate, checkpoint) + early stop
  devices.py    one CPU device per core; the run axis padded and sharded
  distributed.py  several JAX processes as one job; process 0 writes
  ckpt.py       orbax checkpoints (arrays + JSON metadata), fallback to readable steps
  metrics.py    metrics.jsonl and TensorBoard runs that a resumed run never logs twice
  writers.py    config.json / summary.json / CSV, atomic writes, progress bars
  report.py     diverged-run warnings and the final table
  validate.py   one-line config errors;  registry.py  experiment names -> modules
                (found by their EXPERIMENT line under papers/; no paper is imported)
  plotting.py   matplotlib helpers shared by the papers' figures
"""
