"""Load and scale benchmarks (not part of the test suite): `python -m bench.run`, `python -m bench.scale`."""
