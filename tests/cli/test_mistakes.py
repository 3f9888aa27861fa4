"""Every kind of user mistake ends in one readable line on stderr and a non-zero exit.

2 for an argument the parser refuses (the line names the option), 1 for a command that could
not do its work (the line says why); never a traceback. The commands run in process, from a
temp directory, on config files written there.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
import yaml

from router.cli.main import PORT_IN_USE_EXIT, _parser, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a command that got past its checks writes only here


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], code: int,
            *words: str) -> str:
    """Runs argv; asserts the exit code, exactly one stderr line, no traceback, the words."""
    got, _, err = run(argv, capsys)
    lines = err.strip().splitlines()
    assert got == code, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("tier-router") and ": error: " in lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def config(tmp_path: Path, **overrides: object) -> Path:
    raw = yaml.safe_load((ROOT / "router" / "default_config.yaml").read_text())
    raw["store"] = {"url": f"sqlite:///{tmp_path / 'traces.db'}"}
    raw.update(overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# --config, on every command that takes one

CONFIG_COMMANDS = [["spend"], ["export", "--out", "x.jsonl"], ["learning"], ["serve"],
                   ["train", "--out", "m", "--data-dir", "."], ["retrain", "--out", "c"],
                   ["evaluate", "--out", "r"], ["promote", "--rollback"], ["replay"],
                   ["runs"], ["forget", "--user", "alice"]]


@pytest.mark.parametrize("argv", CONFIG_COMMANDS, ids=lambda a: a[0])
def test_a_missing_config_file_is_named(argv, capsys, tmp_path) -> None:
    refused([argv[0], "--config", str(tmp_path / "nope.yaml"), *argv[1:]], capsys, 2,
            "--config", "nope.yaml", "no such file")


def test_a_config_that_is_a_directory_is_refused(capsys, tmp_path) -> None:
    refused(["spend", "--config", str(tmp_path)], capsys, 2, "--config", "not a file")


def test_an_invalid_config_names_the_field(capsys, tmp_path) -> None:
    refused(["spend", "--config", str(config(tmp_path, quality_target=7))], capsys, 1,
            "quality_target", "less than or equal to 1")


def test_a_config_that_is_not_a_mapping_is_refused(capsys, tmp_path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- one\n- two\n")
    refused(["learning", "--config", str(path)], capsys, 1, "mapping")


def test_an_unopenable_trace_store_is_one_line(capsys, tmp_path) -> None:
    (tmp_path / "file").write_text("")
    path = config(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["store"] = {"url": f"sqlite:///{tmp_path / 'file' / 'traces.db'}"}
    path.write_text(yaml.safe_dump(raw))
    refused(["spend", "--config", str(path)], capsys, 1, "trace store")


# data and model directories, input files

def test_train_on_a_missing_data_dir(capsys) -> None:
    refused(["train", "--data-dir", "/nonexistent", "--out", "m"], capsys, 2,
            "--data-dir", "/nonexistent", "no such directory")


def test_train_on_a_folder_without_the_public_data(capsys, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    line = refused(["train", "--config", str(config(tmp_path)), "--data-dir",
                    str(tmp_path / "empty"), "--out", str(tmp_path / "m")], capsys, 1,
                   "no public data", "routerbench")
    assert "concatenate" not in line


def test_train_on_missing_trace_files(capsys) -> None:
    refused(["train", "--traces", "missing.jsonl", "--out", "m"], capsys, 2,
            "--traces", "missing.jsonl")


def test_evaluate_a_folder_that_is_no_model(capsys, tmp_path) -> None:
    refused(["evaluate", "--model", str(tmp_path), "--out", "r"], capsys, 2,
            "--model", "no metadata.json")


def test_card_without_a_report(capsys) -> None:
    refused(["card", "--model", str(ROOT / "models" / "default")], capsys, 2, "--report")


def test_card_with_a_missing_report(capsys) -> None:
    refused(["card", "--model", str(ROOT / "models" / "default"), "--report", "report.json"],
            capsys, 2, "--report", "no such file")


@pytest.mark.parametrize(("text", "words"), [("not json", ("is not JSON",)),
                                             ('{"a": 1}', ("not a report.json",)),
                                             ("[1, 2]", ("not a report.json",))])
def test_card_with_something_else_than_a_report(capsys, tmp_path, text, words) -> None:
    report = tmp_path / "report.json"
    report.write_text(text)
    refused(["card", "--model", str(ROOT / "models" / "default"), "--report", str(report)],
            capsys, 1, *words)


def test_promote_needs_a_candidate_it_can_read(capsys, tmp_path) -> None:
    cfg = str(config(tmp_path))
    refused(["promote", "--config", cfg], capsys, 1, "--candidate")
    refused(["promote", "--config", cfg, "--candidate", str(tmp_path)], capsys, 1,
            "retrain_report.json")
    refused(["promote", "--config", cfg, "--candidate", "gone"], capsys, 2, "--candidate")


def test_an_empty_api_key_file_is_named(capsys, tmp_path) -> None:
    (tmp_path / "key").write_text("\n")
    (tmp_path / "cand").mkdir()
    (tmp_path / "cand" / "retrain_report.json").write_text("{}")
    refused(["promote", "--config", str(config(tmp_path)), "--candidate",
             str(tmp_path / "cand"), "--api-key-file", str(tmp_path / "key")],
            capsys, 1, "key", "is empty")


# output paths

def test_export_to_an_unknown_format(capsys) -> None:
    refused(["export", "--out", "x.csv"], capsys, 2, "--out", ".jsonl or .parquet", "x.csv")


@pytest.mark.parametrize("argv", [["export", "--out", "{file}/x.jsonl"],
                                  ["train", "--out", "{file}/model"],
                                  ["evaluate", "--out", "{file}"],
                                  ["replay", "--out", "{file}/r.json"]], ids=lambda a: a[0])
def test_an_unwritable_output_path(capsys, tmp_path, argv) -> None:
    (tmp_path / "a-file").write_text("")
    argv = [a.format(file=tmp_path / "a-file") for a in argv]
    refused(argv, capsys, 2, "--out", "a-file")


def test_export_into_a_directory_path(capsys, tmp_path) -> None:
    (tmp_path / "d.jsonl").mkdir()
    refused(["export", "--out", str(tmp_path / "d.jsonl")], capsys, 2, "is a directory")


# numbers, choices, dates, URLs

@pytest.mark.parametrize(("argv", "option"), [
    (["serve", "--port", "abc"], "--port"), (["serve", "--port", "-1"], "--port"),
    (["serve", "--port", "70000"], "--port"),
    (["hash-key", "--generate", "--rate-per-minute", "0"], "--rate-per-minute"),
    (["hash-key", "--generate", "--name", ""], "--name"),
    (["evaluate", "--out", "r", "--bootstrap", "-1"], "--bootstrap"),
    (["replay", "--orders", "0"], "--orders"), (["replay", "--learn", "ten"], "--learn"),
    (["train", "--out", "m", "--seed", "1.5"], "--seed"),
    (["serve", "--log-level", "loud"], "--log-level"),
    (["spend", "--by", "colour"], "--by"),
    (["spend", "--since", "yesterday"], "--since"),
    (["export", "--out", "x.jsonl", "--since", "2026-13-01"], "--since"),
    (["promote", "--rollback", "--url", "localhost:8000"], "--url"),
    (["runs", "--limit", "0"], "--limit"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_a_bad_value_names_its_option(capsys, argv, option) -> None:
    refused(argv, capsys, 2, f"argument {option}")


def test_an_unknown_command_or_none(capsys) -> None:
    assert "invalid choice: 'bogus'" in refused(["bogus"], capsys, 2)
    assert "COMMAND" in refused([], capsys, 2)


def test_hash_key_without_a_key_on_stdin(capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115 (closed by pytest)
    refused(["hash-key"], capsys, 1, "stdin", "--generate")


def test_spend_takes_iso_8601_dates(capsys, tmp_path) -> None:
    code, out, err = run(["spend", "--config", str(config(tmp_path)), "--json",
                          "--since", "2026-11-01T00:00:00Z"], capsys)
    assert code == 0, err
    assert json.loads(out)["since"] == 1793491200.0


# what is not a mistake but a bug is one line too, unless --traceback

def test_an_unexpected_error_is_one_line_and_traceback_shows_it(capsys, monkeypatch) -> None:
    import router.cli.main as cli

    def explode(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(cli, "_hash_key", explode)
    line = refused(["hash-key", "--generate"], capsys, 1, "unexpected ZeroDivisionError: boom",
                   "--traceback")
    assert line
    with pytest.raises(ZeroDivisionError):
        main(["--traceback", "hash-key", "--generate"])


def test_an_os_error_inside_a_command_is_one_line(capsys, monkeypatch) -> None:
    import router.cli.main as cli

    def unreadable(args: argparse.Namespace) -> int:
        return len(Path("/nonexistent/file").read_text())

    monkeypatch.setattr(cli, "_hash_key", unreadable)
    refused(["hash-key", "--generate"], capsys, 1, "/nonexistent/file", "No such file")


# --version and help

def test_version_comes_from_the_package_metadata(capsys) -> None:
    from importlib.metadata import version

    code, out, _ = run(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"tier-router {version('tier-router')}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_option_of_every_command_has_help() -> None:
    parser = _parser()
    missing = [f"{name} {'/'.join(a.option_strings)}"
               for name, sub in {"": parser, **_subparsers(parser)}.items()
               for a in sub._actions
               if a.option_strings and not (a.help and a.help.strip())]
    assert missing == []


def test_the_top_level_help_is_for_users(capsys) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert "never at import" not in out and "lazily" not in out  # the module's docstring
    for command in _subparsers(_parser()):
        assert command in out


def test_traces_of_no_configured_tier_train_nothing_and_say_so(capsys, tmp_path) -> None:
    traces = tmp_path / "t.jsonl"
    traces.write_text('{"prompt": "hi", "model": "a-model-of-no-tier", "quality": 1}\n')
    cfg = str(config(tmp_path))
    refused(["train", "--config", cfg, "--traces", str(traces), "--out", "m"], capsys, 1,
            "no training prompts")
    refused(["replay", "--config", cfg, "--traces", str(traces), "--url", "http://127.0.0.1:9",
             "--no-ceiling"], capsys, 1, "nothing to replay")


def test_serve_on_a_busy_port_says_so_before_loading_the_model(capsys, monkeypatch) -> None:
    import socket

    import router.api.app

    def never(*args, **kwargs):  # the model would load here: the check must come first
        raise AssertionError("create_app called on a busy port")

    monkeypatch.setattr(router.api.app, "create_app", never)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            code = main(["serve", "--port", str(port), "--log-format", "text"])
        finally:  # serve sets up the process's logging: give the next tests theirs back
            root.handlers[:], root.level = handlers, level
            logging.captureWarnings(False)
    assert code == PORT_IN_USE_EXIT == 4
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is already in use" in lines[0]


def test_replay_names_the_source_flag_and_the_choices(capsys) -> None:
    refused(["replay", "--data-dir", ".", "--source", "nope"], capsys, 2,
            "argument --source: must be one of routerbench, llmrouter", "Got 'nope'")


def test_replay_report_names_a_file_that_is_not_a_report(capsys, tmp_path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"rows": []}')
    refused(["replay-report", str(other)], capsys, 1, "other.json is not a report")
    refused(["replay-report", str(tmp_path / "gone.json")], capsys, 2, "REPORT", "gone.json")
