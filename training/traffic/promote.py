"""`tier-router promote`: install a retrained candidate only if its measured numbers allow it.

The rule (``promotion`` in the config), on the candidate's ``retrain_report.json``:

* enough held-out logged calls (``min_holdout``);
* off-policy DR quality not worse than the serving model's by more than ``quality_margin``;
* estimated cost per call not higher by more than ``cost_margin`` (relative);
* with public test splits in the report: mean APGR not worse by more than ``quality_margin``.

Installing moves the serving directory to ``<model_dir>.history/<time>-<version>`` (kept for
`--rollback`), renames a copy of the candidate into place, and asks the running service to
reload (``POST /admin/reload``). If the service refuses the new model, the previous one is put
back and reloaded, so a refused promotion leaves things as they were.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from router.config import PromotionConfig, Settings
from router.decision.artifact import check_model_fits, load_model
from router.errors import RouterError

log = logging.getLogger(__name__)


def judge(report: dict[str, Any], rule: PromotionConfig) -> tuple[bool, list[str]]:
    """(promote?, the reasons, one line per check)."""
    reasons, ok = [], True
    off = report["offpolicy"]
    n = int(report["logged"]["holdout"])
    if n < rule.min_holdout:
        ok = False
        reasons.append(f"refused: {n} held-out logged calls, fewer than min_holdout "
                       f"{rule.min_holdout}")
    serving, candidate = off["serving"], off["candidate"]
    gap = candidate["dr"] - serving["dr"]
    passed = math.isfinite(gap) and gap >= -rule.quality_margin
    ok &= passed
    reasons.append(f"{'ok' if passed else 'refused'}: off-policy DR quality {candidate['dr']:.4f} "
                   f"vs {serving['dr']:.4f} (gap {gap:+.4f}, margin {rule.quality_margin})")
    limit = serving["cost_usd"] * (1 + rule.cost_margin)
    passed = candidate["cost_usd"] <= limit
    ok &= passed
    reasons.append(f"{'ok' if passed else 'refused'}: cost per call ${candidate['cost_usd']:.6f} "
                   f"vs ${serving['cost_usd']:.6f} (limit ${limit:.6f})")
    public = report.get("public")
    if public:
        gap = public["candidate"]["apgr_mean"] - public["serving"]["apgr_mean"]
        passed = math.isfinite(gap) and gap >= -rule.quality_margin
        ok &= passed
        reasons.append(f"{'ok' if passed else 'refused'}: public APGR "
                       f"{public['candidate']['apgr_mean']:.4f} vs "
                       f"{public['serving']['apgr_mean']:.4f} (gap {gap:+.4f})")
    return ok, reasons


def history_dir(model_dir: Path) -> Path:
    return model_dir.parent / f"{model_dir.name}.history"


def _stamp(model_dir: Path, tag: str = "") -> Path:
    version = "unversioned"
    try:
        version = json.loads((model_dir / "metadata.json").read_text())["router_version"]
    except (OSError, KeyError, json.JSONDecodeError):
        pass
    name = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{tag}{version}"
    return history_dir(model_dir) / name


def install(candidate: Path, model_dir: Path, settings: Settings) -> Path | None:
    """Swap `candidate` into `model_dir`; returns where the previous model was kept."""
    check_model_fits(settings, load_model(candidate))
    incoming = model_dir.parent / f".{model_dir.name}.incoming-{os.getpid()}"
    shutil.rmtree(incoming, ignore_errors=True)
    shutil.copytree(candidate, incoming)
    previous = None
    if model_dir.exists():
        previous = _stamp(model_dir)
        previous.parent.mkdir(parents=True, exist_ok=True)
        os.replace(model_dir, previous)
    os.replace(incoming, model_dir)
    return previous


def restore(previous: Path, model_dir: Path, tag: str) -> None:
    """Put `previous` back in place; the current one goes to history tagged `tag`."""
    if model_dir.exists():
        os.replace(model_dir, _stamp(model_dir, tag))
    os.replace(previous, model_dir)


def latest_previous(model_dir: Path) -> Path:
    entries = sorted(p for p in history_dir(model_dir).glob("*") if p.is_dir()
                     and "-refused-" not in p.name and "-rolledback-" not in p.name)
    if not entries:
        raise RouterError(f"no previous model in {history_dir(model_dir)} to roll back to")
    return entries[-1]


def reload_service(url: str, api_key: str | None = None, timeout: float = 120) -> dict[str, Any]:
    """POST /admin/reload; raises RouterError with the service's answer when refused."""
    request = urllib.request.Request(f"{url.rstrip('/')}/admin/reload", method="POST", data=b"",
                                     headers={"Content-Type": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise RouterError(f"the service refused the reload ({exc.code}): "
                          f"{exc.read().decode(errors='replace')}") from exc
    except urllib.error.URLError as exc:
        raise RouterError(f"cannot reach the service at {url}: {exc.reason}") from exc


def promote(
    candidate: Path, settings: Settings, url: str | None, api_key: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Judge, install and reload; the outcome as a dict (`promoted` true or false)."""
    report = json.loads((candidate / "retrain_report.json").read_text())
    ok, reasons = judge(report, settings.promotion)
    result: dict[str, Any] = {"promoted": False, "reasons": reasons,
                              "candidate": report["candidate"]["router_version"]}
    if not ok and not force:
        return result
    previous = install(candidate, settings.model_dir, settings)
    result["previous"] = str(previous) if previous else None
    if url is not None:
        try:
            result["reload"] = reload_service(url, api_key)
        except RouterError as exc:
            if previous is not None:
                restore(previous, settings.model_dir, "refused-")
                reload_service(url, api_key)
            result["reasons"].append(f"refused by the service, previous model restored: {exc}")
            return result
    result["promoted"] = True
    return result


def rollback(settings: Settings, url: str | None, api_key: str | None = None) -> dict[str, Any]:
    previous = latest_previous(settings.model_dir)
    restore(previous, settings.model_dir, "rolledback-")
    answer = reload_service(url, api_key) if url is not None else None
    return {"restored": str(previous), "reload": answer}
