"""
setuptools needs this file only for C{cffi_modules}, which has no declarative form.

The native module C{twisted_turn._turnio} (native/build_turnio.py) is built on Linux only; elsewhere
the package is pure Python and runs on Twisted's stock UDP port (see L{twisted_turn._native}).
"""

import sys

from setuptools import setup

setup(
    cffi_modules=["native/build_turnio.py:ffibuilder"] if sys.platform.startswith("linux") else [],
)
