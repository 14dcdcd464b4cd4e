"""Shared instrumentor machinery: patches and their undoing, versions, optional imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from telemetry_web.errors import TelemetryError
from telemetry_web.instrumentors._base import MIN_VERSIONS, Switch, require_version, wrap

from .._net import free_port
from ._support import require_service


class Greeter:
    def greet(self, name: str) -> str:
        return f"hello {name}"


class LoudGreeter(Greeter):
    pass


def shout(wrapped, instance, args, kwargs):  # type: ignore[no-untyped-def]
    return wrapped(*args, **kwargs).upper()


def test_wrapping_a_class_attribute_is_undone_exactly() -> None:
    """A class attribute is wrapped, then the very function that was there is put back."""
    original = vars(Greeter)["greet"]
    patch = wrap(Greeter, "greet", shout)
    assert Greeter().greet("ada") == "HELLO ADA"
    patch.undo()
    assert vars(Greeter)["greet"] is original
    assert Greeter().greet("ada") == "hello ada"


def test_wrapping_an_inherited_attribute_removes_the_override() -> None:
    """Wrapping a method a subclass inherits adds an override that undoing deletes."""
    patch = wrap(LoudGreeter, "greet", shout)
    assert LoudGreeter().greet("ada") == "HELLO ADA"
    assert Greeter().greet("ada") == "hello ada"
    patch.undo()
    assert "greet" not in vars(LoudGreeter)


def test_wrapping_one_instance_leaves_the_others() -> None:
    """An instance patch lives in that instance only and leaves no attribute behind."""
    one, other = Greeter(), Greeter()
    patch = wrap(one, "greet", shout)
    assert (one.greet("a"), other.greet("b")) == ("HELLO A", "hello b")
    patch.undo()
    assert "greet" not in vars(one)
    assert one.greet("a") == "hello a"


def test_a_patch_wrapped_over_by_someone_else_is_switched_off() -> None:
    """When another library wrapped over ours, undoing leaves its wrapper and turns ours off."""
    original = vars(Greeter)["greet"]
    ours = wrap(Greeter, "greet", shout)
    theirs = wrap(Greeter, "greet", lambda w, i, a, k: w(*a, **k) + "!")
    try:
        ours.undo()
        assert Greeter().greet("ada") == "hello ada!"
    finally:
        theirs.undo()  # puts back our wrapper, switched off
        Greeter.greet = original  # type: ignore[method-assign]


def test_a_switch_shared_by_patches_turns_them_all_off() -> None:
    """Patches made with one switch (a client and its pipelines) stop together."""
    switch = Switch()
    first, second = Greeter(), Greeter()
    wrap(first, "greet", shout, switch)
    wrap(second, "greet", shout, switch)
    switch.on = False
    assert (first.greet("a"), second.greet("b")) == ("hello a", "hello b")


@pytest.mark.parametrize(
    ("token", "version", "ok"),
    [("sqlalchemy", "1.4.54", True), ("sqlalchemy", "2.1.0b1", True),
     ("sqlalchemy", "1.3.24", False), ("redis", "5.0.0", True), ("redis", "4.6.0", False)],
)  # fmt: skip
def test_minimum_versions(token: str, version: str, ok: bool) -> None:
    """A library older than MIN_VERSIONS is refused with the upgrade command."""
    assert token in MIN_VERSIONS
    if ok:
        require_version(token, version)
    else:
        with pytest.raises(TelemetryError, match=rf"pip install -U 'telemetry-web\[{token}\]'"):
            require_version(token, version)


@pytest.mark.parametrize(("module", "library"), [("sqlalchemy", "sqlalchemy"), ("redis", "redis")])
def test_missing_library_names_the_extra(module: str, library: str) -> None:
    """Importing an instrumentor whose library is absent raises MissingExtraError with the
    extra to install; the package itself imports without either library."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules[{library!r}] = None
        import telemetry_web.instrumentors as package
        from telemetry_web import MissingExtraError
        try:
            package.{"SQLAlchemyInstrumentor" if module == "sqlalchemy" else "RedisInstrumentor"}
        except MissingExtraError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"telemetry_web.instrumentors.{module} needs '{library}', which is not installed: "
        f"pip install 'telemetry-web[{library}]'"
    )


def test_a_service_that_is_down_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CI=true a service nobody answers for is a test failure, never a skip."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not reachable"):
        require_service("Nothing", "127.0.0.1", free_port(), timeout=0.5)


def test_a_service_that_is_down_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off CI a missing service skips the test, with the script that starts it named."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="ensure-services"):
        require_service("Nothing", "127.0.0.1", free_port(), timeout=0.5)


def test_a_patched_instance_is_not_kept_alive_by_its_patch() -> None:
    """An instance patch holds its target weakly: dropping the instance frees it, and undoing
    the patch afterwards is a no-op."""
    import gc
    import weakref

    greeter = Greeter()
    patch = wrap(greeter, "greet", shout)
    ref = weakref.ref(greeter)
    del greeter
    gc.collect()
    assert ref() is None
    patch.undo()
