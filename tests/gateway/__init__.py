"""The service as a gateway (telemetry_web.gateway)."""
