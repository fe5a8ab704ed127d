"""float32 activation functions shared by the inference (:mod:`.lstm`) and training (:mod:`.lstm_grad`) kernels.

``tanh`` and ``sigmoid`` use a rational approximation (absolute error < 4e-7) that vectorizes.  The
functions are ``inline="always"``: they are inlined into the Numba IR of their callers, so the code
generated for the kernels is the same as if they were written there.

Numba's on-disk cache of a kernel does not track the functions it inlines from other modules: after
changing this file, delete ``kernels/__pycache__/*.nbi`` and ``*.nbc``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["tanh32", "sigmoid32", "HALF", "ONE"]

# fused multiply-add only: no reassociation (same options as the kernels)
_FM = {"contract"}

HALF = np.float32(0.5)
ONE = np.float32(1.0)
_TCLAMP = np.float32(7.90531110763549805)
_NTCLAMP = np.float32(-7.90531110763549805)
_A13 = np.float32(-2.76076847742355e-16)
_A11 = np.float32(2.00018790482477e-13)
_A9 = np.float32(-8.60467152213735e-11)
_A7 = np.float32(5.12229709037114e-08)
_A5 = np.float32(1.48572235717979e-05)
_A3 = np.float32(6.37261928875436e-04)
_A1 = np.float32(4.89352455891786e-03)
_B6 = np.float32(1.19825839466702e-06)
_B4 = np.float32(1.18534705686654e-04)
_B2 = np.float32(2.26843463243900e-03)
_B0 = np.float32(4.89352518554385e-03)


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy", inline="always")
def tanh32(x):
    """float32 tanh, rational approximation (|error| < 4e-7), vectorizable."""
    x = min(max(x, _NTCLAMP), _TCLAMP)
    x2 = x * x
    p = _A13
    p = p * x2 + _A11
    p = p * x2 + _A9
    p = p * x2 + _A7
    p = p * x2 + _A5
    p = p * x2 + _A3
    p = p * x2 + _A1
    p = p * x
    q = _B6
    q = q * x2 + _B4
    q = q * x2 + _B2
    q = q * x2 + _B0
    return p / q


@njit(cache=True, nogil=True, fastmath=_FM, error_model="numpy", inline="always")
def sigmoid32(x):
    """float32 logistic function via ``0.5 * tanh(x / 2) + 0.5``."""
    return HALF * tanh32(HALF * x) + HALF
