"""
The cffi builder of C{twisted_turn._turnio} (out-of-line, API mode; our C includes no Python.h,
cffi's generated wrapper does).

setup.py names it in C{cffi_modules}, so C{pip install .} compiles it into the package and the
wheel.  Two C files go in: turnio.c (the batching UDP port's I/O) and turnbench.c (the load
generator and echo peer of C{python -m twisted_turn.bench}).
"""

import os

from cffi import FFI

_here = os.path.dirname(os.path.abspath(__file__))
_parts = ("turnio", "turnbench")


def _read(name: str) -> str:
    with open(os.path.join(_here, name)) as f:
        return f.read()


ffibuilder = FFI()
ffibuilder.cdef("".join(_read(part + ".cdef") for part in _parts))
ffibuilder.set_source(
    "twisted_turn._turnio",
    "".join(f'#include "{part}.h"\n' for part in _parts),
    # Relative to the project root, where setuptools runs this builder.
    sources=[f"native/{part}.c" for part in _parts],
    include_dirs=["native"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
    # Without a C compiler or Python's headers the install still succeeds, on Twisted's stock
    # UDP port (the server logs one line saying so), unless the build asks for the module.
    optional=os.environ.get("TWISTED_TURN_NATIVE", "").strip().lower() != "require",
)
