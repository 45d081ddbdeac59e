"""
setuptools needs this file only for C{cffi_modules}, which has no declarative form.

The native batching module (native/build_turnio.py, issue 3) is listed here once it lands; until
then the package is pure Python and runs on Twisted's stock UDP port.
"""

from setuptools import setup

setup(cffi_modules=[])
