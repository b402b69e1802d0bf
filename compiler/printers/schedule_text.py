"""The schedule as text (``gradc compile --schedule``): per entry point, each kernel with its domain, the index
map of every load, what it stores, and the GEMM calls with their swapped operands and epilogues."""

from __future__ import annotations

from ..schedule import GemmKernel, GemmOperand, Literal, Load, OpKernel, ProgramSchedule, Register, ScheduledKernel
from ..types import format_shape, format_type


def describe(schedule: ProgramSchedule) -> str:
    """The schedule as text (``gradc compile --schedule``): per entry point, each kernel with its domain, the
    index map of every load, what it stores, and the folded transposes and epilogues."""
    lines = []
    for entry in schedule:
        lines.append(f"entry {entry.point.name}: {len(entry.kernels)} kernels, returns "
                     + " ".join(f"%{r}" for r in entry.results))
        for kernel in entry.kernels:
            lines += _describe_kernel(kernel)
        lines.append("")
    return "\n".join(lines)


def _describe_kernel(kernel: ScheduledKernel, indent: str = "  ") -> list[str]:
    if isinstance(kernel, GemmKernel):
        def show(o: GemmOperand) -> str:
            return f"%{o.value}" + (" swapped" if o.swapped else "")
        product = format_type(kernel.node.type.shape, kernel.node.type.dtype)
        head = (f"{indent}k{kernel.id} gemm %{kernel.node.id} = {show(kernel.a)} @ {show(kernel.b)} -> {product}"
                + ("" if kernel.store_product else " (kept in registers)"))
        if kernel.epilogue is None:
            return [head]
        return [head + ", epilogue:", *_describe_kernel(kernel.epilogue, indent + "    ")]
    if isinstance(kernel, OpKernel):
        return [f"{indent}k{kernel.id} {kernel.node.op} %{kernel.node.id}"]
    loads = ", ".join(f"%{v}" for v in kernel.loads)
    stores = " ".join(f"%{s}" for s in (*kernel.stored, *(r.id for r in kernel.reductions))) or "-"
    domain = format_shape(kernel.domain) or "a scalar"
    lines = [f"{indent}k{kernel.id} loop over {domain}: loads {loads or '-'}; stores {stores}"]
    for s in kernel.statements:
        parts = []
        for o in s.operands:
            if isinstance(o, Load):
                index = [f"i{k}" for k in range(len(kernel.domain))]
                name_of = lambda value: f"%{value}"
                parts.append(o.guarded(f"%{o.value}[{o.map.render(index, name_of)}]", index, lambda p: repr(p.fill),
                                       name_of))
            elif isinstance(o, Register):
                parts.append(f"%{o.node}")
            elif isinstance(o, Literal):
                parts.append(repr(o.value))
        lines.append(f"{indent}    %{s.node.id} = {s.node.op}({', '.join(parts)})")
    return lines
