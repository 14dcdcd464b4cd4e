"""Flask: ``from telemetry_web.flask import Telemetry``, then ``Telemetry(app)`` or ``init_app``.

Importing this module without Flask installed raises :class:`~telemetry_web.MissingExtraError`
naming ``pip install 'telemetry-web[flask]'``. See :mod:`telemetry_web.adapters.flask`.
"""

from __future__ import annotations

from .adapters.flask import FlaskState, Telemetry

__all__ = ["FlaskState", "Telemetry"]
