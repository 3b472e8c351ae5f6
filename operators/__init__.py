"""Thin mx.operator.CustomOp adapters over the numpy logic in rfcn_face (each operator in its own module).

Importing this package registers every operator (``mx.sym.Custom(op_type=...)`` / ``mx.nd.Custom``).
"""
from . import anchor_target, mining, nms, ohem, proposal_target  # noqa: F401  (registration side effects)
