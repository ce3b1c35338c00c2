"""Benchmarks and the reliability report of mi-notebook.

``bench/reliability/`` holds the reliability scenarios (imported by the tests and by
``bench/reliability_report.py``); ``bench_client.py`` and ``bench_emulator.py`` are stand-alone scripts.
"""
