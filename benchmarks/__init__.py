"""Benchmarks: bare Starlette vs telemetry-web vs the usual OpenTelemetry stack.

Run with ``python -m benchmarks`` (``make bench``); see ``python -m benchmarks --help``.
"""
