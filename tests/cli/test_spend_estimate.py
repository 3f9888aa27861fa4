"""`tier-router spend` prints the learned map's off-policy estimate from the store the service
wrote (no server), as a table and as JSON, and refuses a bound out of range. Synthetic labels
(the fake embedder, made-up outcomes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from router.cli.main import main
from router.config import Settings
from tests.api.test_feedback import client_for
from tests.api.test_spend_estimate import labelled


def test_spend_prints_the_estimate_beside_the_spend(settings: Settings, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    strongest = settings.model_copy(update={"quality_target": 1.0})  # known answer: 1 and 1
    with client_for(strongest) as c:
        labelled(c, 12)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(strongest.model_dump(mode="json")))
    assert main(["spend", "--config", str(config), "--estimate-resamples", "50"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("estimate (off-policy): the learned map") for line in out)
    every = next(line for line in out if line.startswith("(every call)"))
    assert every.split()[2:4] == ["12", "12.0"]  # calls, effective calls
    assert "1.000 [1.000, 1.000]" in every
    assert any(line.startswith("Following the map at quality_target 1: 1.00 [1.00, 1.00]")
               for line in out)
    assert main(["spend", "--config", str(config), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["estimate"]["overall"]["calls"] == 12
    assert main(["spend", "--config", str(config), "--json", "--no-estimate"]) == 0
    assert json.loads(capsys.readouterr().out)["estimate"] is None


def test_spend_without_evidence_says_not_enough(settings: Settings, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with client_for(settings) as c:
        labelled(c, 5)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    assert main(["spend", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "(every call)" in out and "not enough evidence" in out
    assert "No estimate yet: not enough evidence" in out


@pytest.mark.parametrize(("flag", "value"), [("--estimate-rows", "99"),
                                             ("--estimate-resamples", "2001"),
                                             ("--estimate-categories", "x")])
def test_an_estimate_bound_out_of_range_is_refused_naming_the_flag(
    flag: str, value: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["spend", flag, value])
    assert exc.value.code == 2 and flag in capsys.readouterr().err
