"""The reference executor: run a graph node by node with each op's NumPy reference forward.

It is exact by construction (no fusion, no reordering) and is what the compiled targets are checked
against. The interpreter itself lives with the graph IR (``compiler/interpret.py``, offered by the driver),
because ``scan``'s reference forward runs its body graph with it.
"""

from gradc.compiler.driver import evaluate

__all__ = ["evaluate"]
