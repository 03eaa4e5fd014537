"""The pytest plugin fails under CI when the fleet is unavailable, and skips elsewhere."""

import pytest

from fleet.pytest_plugin import in_ci, unavailable


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_a_missing_engine_fails_the_run_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="no engine"):
        unavailable("no engine")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_a_missing_engine_skips_outside_ci(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match="no engine"):
        unavailable("no engine")
