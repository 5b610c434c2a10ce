"""LLVM intrinsics that Numba does not expose: unaligned loads and the SSE4.2 CRC32
instruction.

These can only be called from compiled kernels. ``HAS_SSE42`` says whether the host
CPU has the CRC32 instruction; on a CPU without it the intrinsic compiles to a trap,
so a kernel may contain a hardware branch that is simply never taken there (callers
check ``HAS_SSE42`` before choosing it). Numba keys its on-disk cache by CPU name and
features, so code compiled for one CPU is never reused on another.
"""

import os
import platform
from typing import Any

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _host_has_sse42() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    forced = os.environ.get("NUMBA_CPU_FEATURES")
    if forced is not None:
        return "+sse4.2" in forced.split(",")
    return bool(llvm.get_host_cpu_features().get("sse4.2", False))


HAS_SSE42: bool = _host_has_sse42()
"""True when the host CPU executes CRC32 (SSE4.2) and kernels may use it."""


def _call_or_trap(builder: Any, name: str, fnty: ir.FunctionType, args: list[Any]) -> Any:
    if HAS_SSE42:
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        return builder.call(fn, args)
    trap = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.trap"
    )
    builder.call(trap, [])
    return ir.Constant(fnty.return_type, 0)


def _crc32_typer(llvm_name: str, register_bits: int, value_bits: int) -> Any:
    """Typing-and-codegen function of an intrinsic for one CRC32 instruction form."""
    register_type = types.Integer.from_bitwidth(register_bits, signed=False)
    value_type = types.Integer.from_bitwidth(value_bits, signed=False)

    def typer(typingctx: Any, crc: Any, value: Any) -> Any:
        sig = register_type(register_type, value_type)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            fnty = ir.FunctionType(ir.IntType(register_bits),
                                   [ir.IntType(register_bits), ir.IntType(value_bits)])
            return _call_or_trap(builder, llvm_name, fnty, list(args))

        return sig, codegen

    typer.__name__ = typer.__qualname__ = f"crc32_u{value_bits}"
    return typer


def _load_u64(typingctx: Any, array: Any, index: Any) -> Any:
    if not isinstance(array, types.Array) or array.dtype != types.uint8:
        return None
    sig = types.uint64(array, index)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        pointer = builder.gep(data, [args[1]])
        wide = builder.bitcast(pointer, ir.IntType(64).as_pointer())
        return builder.load(wide, align=1)

    return sig, codegen


# The intrinsics, callable from kernels only (typed as Any: mypy cannot see through
# Numba's intrinsic wrapper).

crc32_u64: Any = intrinsic(_crc32_typer("llvm.x86.sse42.crc32.64.64", 64, 64))
"""``crc32_u64(crc: uint64, value: uint64) -> uint64``: the CRC32 instruction over
8 bytes; ``crc`` is the raw (not inverted) register in its low 32 bits."""

crc32_u8: Any = intrinsic(_crc32_typer("llvm.x86.sse42.crc32.32.8", 32, 8))
"""``crc32_u8(crc: uint32, value: uint8) -> uint32``: the CRC32 instruction over a byte."""

load_u64: Any = intrinsic(_load_u64)
"""``load_u64(array: uint8[:], index) -> uint64``: the 8 bytes at ``index``, any
alignment, in host byte order (little-endian on x86-64, the only host that uses it).
No bounds check: the caller guarantees ``index + 8 <= array.size``."""
