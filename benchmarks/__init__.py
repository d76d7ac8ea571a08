"""Speed benchmarks for ncii_hash, measured side by side with their peers.

Run ``python -m benchmarks --quick`` from the repository root; see ``benchmarks/README.md``
for the options, and ``benchmarks/harness.py`` for how to write a new ``bench_*.py`` and
for the JSON schema every benchmark writes.
"""
