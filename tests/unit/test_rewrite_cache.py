"""The controller's cache of rewritten test modules is the one pytest's import reads back."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.assertion import rewrite

from tests.support.rewrite_cache import warm


def test_warm_writes_each_test_module_rewritten_once(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setattr("sys.dont_write_bytecode", False)
    (tmp_path / "test_sample.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    (tmp_path / "conftest.py").write_text("X = 1\n")
    (tmp_path / "helper.py").write_text("Y = 2\n")
    monkeypatch.setattr(request.config, "args", [str(tmp_path)])

    assert warm(request.config) == 2  # the test module and the conftest, not the helper
    assert warm(request.config) == 0  # current copies are kept

    source = tmp_path / "test_sample.py"
    pyc = rewrite.get_cache_dir(source) / ("test_sample" + rewrite.PYC_TAIL)
    code = rewrite._read_pyc(source, pyc)
    assert code is not None
    assert "@py_builtins" in code.co_names  # pytest's rewritten asserts, not plain bytecode
