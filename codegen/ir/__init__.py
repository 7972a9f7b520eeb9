"""The typed intermediate representation: fixed-point types, ops, graph, integer reference.

Importing the package registers every op kind (their modules register themselves in
``codegen.ir.graph.OP_KINDS``), so a graph read from JSON always finds its ops' classes.
"""
from . import attention, butterfly, contraction, conv, graph, joins, mask, nonlinear, pooling  # noqa: F401
