"""Slow, obvious references and synthetic inputs for the tests and ``benchmarks/`` (the library never imports
this package): the WIDER FACE and FDDB evaluation references, the anchor-assignment and anchor-mining
references, one-box decoding, synthetic evaluation sets, a helper that kills a child process at a chosen
moment for the interrupted-run tests, and sample builders that fail or kill their training-loader worker."""
