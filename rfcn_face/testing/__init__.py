"""Slow, obvious references and synthetic inputs for the tests and ``benchmarks/`` (the library never imports
this package): the WIDER FACE and FDDB evaluation references, synthetic evaluation sets."""
