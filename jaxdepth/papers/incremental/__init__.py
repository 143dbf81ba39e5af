"""Incremental learning and the implicit bias of depth (Gissin, Shalev-Shwartz & Daniely 2020).

Modules: models (pure init/apply), runner (vmapped full-batch GD over seeds x init
scales, one compile per depth), metrics (t10/t50/t90, next_frac_at_t90), critical
(critical initialization by quadrature), and one module per experiment (toy,
matrix_sensing, quadratic, diagonal, circular_conv, omp) with validate/run; fields
(every experiment's config fields, declared once).
"""
