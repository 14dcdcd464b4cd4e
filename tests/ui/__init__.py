import pytest

pytest.importorskip("starlette")
