"""Builds the example C-level strategy against the fastfeed that Python imports:

    python setup.py build_ext --inplace

fastfeed's ``.pxd`` files ship in its wheel, beside its modules; Cython finds them through
the package's location, and ``fastfeed.get_include()`` gives the C headers they name.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

import fastfeed

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastfeed.__file__)))

setup(
    name="fastfeed-example-vwap",
    ext_modules=cythonize(
        [
            Extension(
                "vwap",
                [os.path.join(HERE, "vwap.pyx")],
                include_dirs=[fastfeed.get_include()],
                extra_compile_args=["-O2"],
            )
        ],
        language_level=3,
        include_path=[PKG_PARENT],
        quiet=True,
    ),
)
