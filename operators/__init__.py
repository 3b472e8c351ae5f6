"""Thin mx.operator.CustomOp adapters over the numpy logic in rfcn_face (each operator in its own module)."""
