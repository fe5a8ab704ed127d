"""Numba kernels of speechlstm: arithmetic only; orchestration lives in ``speechlstm``."""
