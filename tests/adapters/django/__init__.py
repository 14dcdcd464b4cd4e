"""Tests of the Django adapter (skipped when Django is not installed)."""

import pytest

pytest.importorskip("django")
