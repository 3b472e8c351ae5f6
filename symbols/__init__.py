"""Gluon HybridBlocks of rfcn_face (each network lives in its own module)."""
