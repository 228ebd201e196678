"""The Python client of the backend: spawn it, read its ready line, talk HTTP to it, stop its whole
process tree, and check that it behaves (``checks``).

It is what the desktop app's own service manager does, written once for every caller here: ``compile
verify``, the benchmarks and the tests. It never ships inside a build: the backend does not import it.
"""
