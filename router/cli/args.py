"""What the CLI accepts, and the one place its errors are written.

A user's mistake ends in one line on stderr and a non-zero exit (2 for a bad argument, 1 for a
command that could not do its work), never a traceback: the argument types below refuse bad
values while parsing, naming the option, and `run` turns the errors a command raises on
purpose (`RouterError`, an unreadable or unwritable file) into that one line. Anything else is
a bug; it is one line too, and `--traceback` shows where.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from router.errors import RouterError

WHEN_HELP = "ISO 8601 (2026-11-01, 2026-11-01T09:30:00Z; UTC unless it says) or epoch seconds"


class CliError(Exception):
    """A command was given something it cannot use (shown as one line, exit 1).

    Not a `RouterError`: those are what the library raises, and the API maps each of them."""


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that ends each option with its default, unless the help already says it or there is
    none to say (a flag, an option that is off unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        nothing = default is None or default is False or default == [] \
            or default == argparse.SUPPRESS
        if "default" in text or nothing or not action.option_strings:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the option, then where to find help, and
    the help shows every option's default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def run(args: argparse.Namespace) -> int:
    """Run the chosen command; what goes wrong is one line on stderr and a non-zero exit."""
    prog = f"tier-router {args.command}"
    try:
        return int(args.func(args) or 0)
    except (RouterError, CliError) as exc:
        return _fail(prog, str(exc))
    except OSError as exc:
        return _fail(prog, _os_message(exc))
    except KeyboardInterrupt:
        return _fail(prog, "interrupted", code=130)
    except Exception as exc:  # a bug, not a mistake: still one line unless asked for more
        if args.traceback:
            raise
        return _fail(prog, f"unexpected {type(exc).__name__}: {exc} (a bug: run again with "
                           "--traceback and report it)")


def _fail(prog: str, message: str, code: int = 1) -> int:
    line = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"{prog}: error: {line}", file=sys.stderr)
    return code


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


# Argument types: each returns the parsed value or raises ArgumentTypeError with the reason.

def when(text: str) -> float:
    """A moment as epoch seconds, from ISO 8601 (UTC unless it names a zone) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {WHEN_HELP}. Got {text!r}.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An int in [low, high] (either bound optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number. Got {text!r}.") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be in {_range(low, high)}. Got {value}.")
        return value

    return parse


def _range(low: int | None, high: int | None) -> str:
    if high is None:
        return f"[{low}, ...)" if low is not None else "any"
    return f"[{low if low is not None else '...'}, {high}]"


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable")
    return path


def existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such directory")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: not a directory")
    return path


def model_dir(text: str) -> Path:
    """A model directory: one that holds the metadata.json `train` writes."""
    path = existing_dir(text)
    if not (path / "metadata.json").is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a model directory (no metadata.json)")
    return path


def out_dir(text: str) -> Path:
    """A directory to write (created if missing): not a file, under a writable directory."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a directory")
    _check_writable(path, text)
    return path


def out_file(suffixes: Sequence[str]) -> Callable[[str], Path]:
    """A file to write with one of `suffixes`, whose directory exists or can be made."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.suffix not in suffixes:
            raise argparse.ArgumentTypeError(
                f"must end in {' or '.join(suffixes)} (the format follows it). Got {path.name!r}.")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: is a directory")
        _check_writable(path.parent, text)
        return path

    return parse


def _check_writable(path: Path, text: str) -> None:
    """The nearest existing ancestor must be a directory this process may write in."""
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: cannot be written ({ancestor} is a file)")
    if not os.access(ancestor, os.W_OK):
        raise argparse.ArgumentTypeError(
            f"{text}: cannot be written ({ancestor} is read-only for this user)")


def public_source(text: str) -> str:
    """A data set of the public data folder (its adapters are in training/ingest.py)."""
    from training.ingest import PUBLIC_LOADERS

    if text not in PUBLIC_LOADERS:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(PUBLIC_LOADERS)}. Got {text!r}.")
    return text


def public_source_part(text: str) -> str:
    """A data set of the public data folder, or one of its sources (routerbench/mbpp)."""
    public_source(text.split("/", 1)[0])
    return text


def url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or len(text.split("//", 1)[1]) == 0:
        raise argparse.ArgumentTypeError(
            f"expected an http(s) URL such as http://127.0.0.1:8000. Got {text!r}.")
    return text.rstrip("/")


def read_key(path: Path | None) -> str | None:
    """The API key in a file (first line), or None without one; an empty file is a mistake."""
    if path is None:
        return None
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise CliError(f"{path} is empty: it should hold an API key")
    return key


def config_option(parser: Any) -> None:
    """--config, the same on every command."""
    parser.add_argument("--config", type=existing_file, default=None, metavar="FILE",
                        help="YAML/TOML config file (default: the shipped "
                             "router/default_config.yaml)")
