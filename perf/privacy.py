"""Whether private data leaves: the router's privacy scan on a labelled set.

perf/data/privacy.jsonl holds prompts written by hand for this measure, one
JSON object a line: {"messages": [...], "private": true|false, "kind": ...}
(kinds: financial, health, communications: the topic in the user's words,
paraphrased, plural, inflected; hidden: an identifier or a private fact in a
system message, an earlier turn or a tool result; general: nothing private,
some near misses such as "river bank" or the Swift language).

Each conversation goes through the pre-assessment (`RuleClassifier.assess`)
and the egress gate (`EgressGate.check`, an allow-listed provider, no budget
limit) with the production inventory's egress policy: never_leave_domains
financial, health, communications, egress.when_unsure stay, and the owner
identifiers below. Printed, with counts:

- leak rate: private prompts the gate would let out (must be 0);
- over-block rate: general prompts it keeps in;
and the prompts behind each, with the reason the gate gives.

Usage: python perf/privacy.py [--data FILE] [--when-unsure stay|leave] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sovereign.router.classify import RuleClassifier  # noqa: E402
from sovereign.router.config import (  # noqa: E402
    BudgetSettings,
    ClassifierSettings,
    EgressSettings,
    ProviderSettings,
)
from sovereign.router.egress import EgressGate  # noqa: E402

DATA = ROOT / "perf" / "data" / "privacy.jsonl"
IDENTIFIERS = ["Jane Q. Doe", "12 Elm Street", "Doe Family Trust"]
PROVIDER = ProviderSettings(name="cloud", base_url="http://cloud.invalid")


def egress_settings(when_unsure: str = "stay") -> EgressSettings:
    return EgressSettings(allow_providers=["cloud"],
                          never_leave_domains=["financial", "health", "communications"],
                          private_identifiers=IDENTIFIERS, when_unsure=when_unsure,  # type: ignore[arg-type]
                          daily_budget=BudgetSettings(calls=10**9, tokens=10**12))


def load(path: Path = DATA) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def measure(rows: list[dict[str, Any]], when_unsure: str = "stay") -> dict[str, Any]:
    egress = egress_settings(when_unsure)
    classifier = RuleClassifier(ClassifierSettings())
    with tempfile.TemporaryDirectory() as tmp:
        gate = EgressGate(egress, Path(tmp) / "egress.off")
        leaks: list[dict[str, Any]] = []
        blocks: list[dict[str, Any]] = []
        private = general = 0
        for row in rows:
            a = classifier.assess(row["messages"], egress)
            d = gate.check(PROVIDER, a.domain, 1, None, findings=a.findings)
            seen = {"kind": row["kind"], "domain": a.domain, "reason": d.reason,
                    "last": row["messages"][-1]["content"][:80]}
            if row["private"]:
                private += 1
                if d.allowed:
                    leaks.append(seen)
            else:
                general += 1
                if not d.allowed:
                    blocks.append(seen)
    return {"when_unsure": when_unsure, "private": private, "general": general,
            "leaked": len(leaks), "leak_rate": len(leaks) / private if private else 0.0,
            "over_blocked": len(blocks), "over_block_rate": len(blocks) / general if general else 0.0,
            "leaks": leaks, "over_blocks": blocks}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--when-unsure", choices=["stay", "leave"], default="stay")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = load(args.data)
    r = measure(rows, args.when_unsure)
    name = args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data
    print(f"privacy scan on {name}: {len(rows)} prompts, egress.when_unsure {r['when_unsure']}")
    print(f"  leak rate       {r['leak_rate']:.3f}  ({r['leaked']}/{r['private']} private prompts "
          "allowed out)")
    print(f"  over-block rate {r['over_block_rate']:.3f}  ({r['over_blocked']}/{r['general']} general "
          "prompts kept in)")
    for title, items in (("leaked", r["leaks"]), ("over-blocked", r["over_blocks"])):
        for x in items:
            print(f"  {title}: [{x['kind']}] {x['last']!r} → {x['domain']}: {x['reason']}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 1 if r["leaked"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
