"""The bad-input campaign (tests/campaign_cases.py; table in docs/reliability.md): every bad input is refused
with one clear line (CLI: exit 2) or a ValueError/TypeError naming the cause (API), and no file is changed."""

import pytest
from campaign_cases import all_cases, run_case
from campaign_workspace import build_workspace

CASES = all_cases()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("campaign"))


def test_the_campaign_tries_at_least_180_inputs():
    assert len(CASES) >= 180
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_refused_clearly(case, workspace, monkeypatch, data_available):
    monkeypatch.chdir(workspace.root)
    outcome = run_case(case, workspace)
    assert outcome.status == "clear", f"{outcome.status}: {outcome.message!r} (exit {outcome.code})"


def test_a_missing_extra_is_named_before_any_work(monkeypatch, capsys, workspace):
    import importlib.util
    import sys

    from spikeconv.cli.main import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    status = main(["analyze", str(workspace.ckpt), "--out", str(workspace.root / "never")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err == ["spikeconv: error: 'spikeconv analyze' needs the 'matplotlib' package: "
                                   "pip install 'spikeconv[figures]'"]
    assert not (workspace.root / "never").exists()
    # a module missing deeper in a command is named the same way
    monkeypatch.setitem(sys.modules, "h5py", None)
    status = main(["inspect", str(workspace.file("m.h5", b"\x89HDF\r\n\x1a\n" + bytes(64)))])
    assert status == 2 and "pip install 'spikeconv[" in capsys.readouterr().err
