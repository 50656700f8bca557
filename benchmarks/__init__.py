"""What pgmq-codegen's notifications cost and gain, measured side by side in one run.

Entry point: ``python3 -m benchmarks.run [--quick] [--out benchmarks/results]``.
See ``benchmarks/README.md`` for what each number means.
"""
