"""Run the docstring examples of the Numba kernels under their installed names (speechlstm.kernels.*).

pytest's --doctest-modules would import kernels/*.py as a top-level package ``kernels``; Numba's on-disk cache
records the module name, so that would leave cache entries other processes cannot load.
"""

import doctest
import importlib
import pkgutil

import pytest

import speechlstm.kernels

MODULES = sorted(m.name for m in pkgutil.iter_modules(speechlstm.kernels.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_kernel_docstring_examples(name):
    mod = importlib.import_module(f"speechlstm.kernels.{name}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
