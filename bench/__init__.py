"""`make bench`: the invitation fan-out measured against the raw floor of the same machine.

Each run starts a fresh embedded stack (Tansu, SecantusDB, SMTP sink) and the three services as
separate processes, exactly as `make run` does; see docs/benchmarks.md for what is measured.
"""
