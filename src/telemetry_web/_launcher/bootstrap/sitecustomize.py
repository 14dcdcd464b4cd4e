# telemetry-web's launcher bootstrap, run at interpreter start by `telemetry run`.
try:
    from telemetry_web._launcher._bootstrap import initialize
except Exception:  # telemetry-web is not importable here: run the app as it is
    pass
else:
    initialize()
