"""``python -m telemetry_web.cli``."""

from . import main

main(prog_name="telemetry")
