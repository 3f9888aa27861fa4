"""What shadow mode reports on real labelled traffic: a team that always calls one tier's model
asks the router in shadow mode, posts each call's real outcome, and reads /spend.

    .venv/bin/python bench/shadow_replay.py --data-dir ../shared/data --source routerbench \
        --follow large --calls 400

Starts `tier-router serve` on the shipped model (a private trace store in a temp dir) with
``shadow: true``, sends ``--calls`` prompts of the source's train split as the agent would
(``POST /route`` with its own ``model``, the first model of the ``--follow`` tier), posts the
followed tier's real outcome on each prompt (``POST /feedback``, the label the shared data set
gives that tier), and prints the service's own shadow report (``GET /spend``). Because the data
set also knows every other tier's outcome on each prompt, it prints beside it what the router's
picks would really have scored had they been followed: the quality side of the saving, which a
live deployment only learns by following. Traffic only goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router.config import load_settings  # noqa: E402
from training.traffic.replay import (  # noqa: E402
    live_service,
    load_traffic,
    observed_tiers,
    replay_settings,
    restrict_tiers,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--source", default="routerbench")
    parser.add_argument("--follow", default="large", help="the tier the agent always calls")
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--config", type=Path, default=None, help="default: the shipped one")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    settings = load_settings(args.config)
    traffic = load_traffic(settings, args.data_dir, args.source, None)
    tiers = observed_tiers(traffic.table)
    if args.follow not in tiers:
        parser.error(f"--follow {args.follow!r}: the source has outcomes for {tiers} only")
    traffic = restrict_tiers(traffic, tiers)
    settings = replay_settings(settings, tiers).model_copy(update={"shadow": True})
    labels = traffic.table.labels
    follow = tiers.index(args.follow)
    rows = np.flatnonzero(~np.isnan(labels).any(axis=1))
    picked = np.random.default_rng(args.seed).permutation(rows)[:args.calls]
    model = settings.tier(args.follow).models[0]

    routed_quality, followed_quality, picks = [], [], []
    with tempfile.TemporaryDirectory() as work, live_service(settings, Path(work)) as url:
        with httpx.Client(base_url=url, timeout=60) as http:
            for i in picked:
                body = {**traffic.body(int(i)), "model": model, "role": "shadow-replay"}
                decision = http.post("/route", json=body).raise_for_status().json()
                assert decision["shadow"], decision
                http.post("/feedback", json={
                    "decision_id": decision["decision_id"], "model_used": model,
                    "quality": float(labels[i, follow])}).raise_for_status()
                picks.append(decision["tier"])
                routed_quality.append(labels[i, tiers.index(decision["tier"])])
                followed_quality.append(labels[i, follow])
            report = http.get("/spend", params={"by": "tier"}).raise_for_status().json()
    shadow = report["shadow"]
    shares = {t: round(picks.count(t) / len(picks), 3) for t in tiers}
    print(json.dumps({"source": args.source, "followed": args.follow, "calls": len(picks),
                      "router_tier_shares": shares, "shadow_report": shadow}, indent=2))
    print(f"shadow: {shadow['calls']} calls, {shadow['with_outcome']} with an outcome; followed "
          f"{shadow['followed_usd']:.6f} USD, the router's picks {shadow['routed_usd']:.6f} USD: "
          f"following it would save {shadow['saved_usd']:+.6f} USD "
          f"({shadow['saved_fraction']:.1%})")
    print(f"quality on these calls: followed ({args.follow}) {np.mean(followed_quality):.3f}, "
          f"the router's picks {np.mean(routed_quality):.3f} (known from the data set; the "
          f"router predicted {shadow['routed_predicted_quality']:.3f} for them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
