"""Pre-assessment: tag a request with a class (A/B/C) and a domain before any tier runs.

The class picks the starting tier (A: the cheapest, B: the second local tier,
C: the strongest local tier, each overridable with `classifier.start`); the
domain feeds the egress policy (a `never_leave_domains` domain never reaches a
cloud tier) and scopes the semantic crystal lookup.

Rules (the default, deterministic and free):
- domain: the first domain of `classifier.domains` with a pattern that
  matches the conversation's user text (case-insensitive); then every message
  of the conversation is scanned for private data and domain terms
  (`privacy.py`), and what it finds can place the request in a private
  domain (`privacy.place`) and is kept in `Assessment.findings` for the
  egress gate; else "general";
- class C: `c_min_words`+ words of user text, or a complex cue
  (`classifier.complex_patterns`: prove, design, analyse, step by step, ...)
  together with `b_min_words`+ words;
- class B: `b_min_words`+ words, a complex cue, code, or a multi-turn
  conversation (more than one user turn);
- class A: everything else (short, single-turn, no cue).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from sovereign.router.config import ClassifierSettings, EgressSettings, TierSettings
from sovereign.router.privacy import Finding, Scanner, place

Cls = Literal["A", "B", "C"]


class Assessment(BaseModel):
    cls: Cls
    domain: str
    method: str
    reasons: list[str]
    start_tier: str | None = None
    # What the privacy scan found (detector, domain, message role and index;
    # never the value), for the egress gate.
    findings: list[Finding] = []


class RuleClassifier:
    def __init__(self, settings: ClassifierSettings) -> None:
        self.settings = settings
        self.domains = [(name, [re.compile(p, re.IGNORECASE) for p in pats])
                        for name, pats in settings.domains.items()]
        self.complex = [re.compile(p, re.IGNORECASE) for p in settings.complex_patterns]
        self._scanner: tuple[tuple[object, ...], Scanner] | None = None

    def scanner(self, egress: EgressSettings) -> Scanner:
        terms = tuple((k, tuple(v)) for k, v in egress.private_terms.items())
        key = (tuple(egress.private_identifiers), terms)
        if self._scanner is None or self._scanner[0] != key:
            self._scanner = (key, Scanner(egress.private_identifiers, egress.private_terms))
        return self._scanner[1]

    def domain(self, text: str) -> tuple[str, str | None]:
        for name, patterns in self.domains:
            for pat in patterns:
                m = pat.search(text)
                if m:
                    return name, m.group(0)
        return "general", None

    def assess(self, messages: list[dict[str, str]], egress: EgressSettings | None = None) -> Assessment:
        """`egress`: the owner's identifiers, extra terms and never-leave
        domains the privacy scan and placement use (none when not given)."""
        egress = egress or EgressSettings()
        user = [m["content"] if isinstance(m.get("content"), str) else "" for m in messages
                if m.get("role") == "user"]
        text = "\n".join(user)
        words = len(text.split())
        rule_domain, cue = self.domain(text)
        findings = self.scanner(egress).scan(messages)
        domain = place(findings, rule_domain, egress.never_leave_domains)
        reasons = [f"domain {rule_domain}" + (f" (matched {cue!r})" if cue else " (no domain rule matched)")]
        if findings:
            shown = "; ".join(f.describe() for f in findings[:4]) + ("; …" if len(findings) > 4 else "")
            reasons.append(f"privacy scan: {shown}" + (f"; domain {domain}" if domain != rule_domain else ""))
        complex_hit = next((m.group(0) for p in self.complex if (m := p.search(text))), None)
        s = self.settings
        cls: Cls = "A"
        if words >= s.c_min_words or (complex_hit and words >= s.b_min_words):
            cls = "C"
            reasons.append(f"{words} words" + (f", complex cue {complex_hit!r}" if complex_hit else ""))
        elif words >= s.b_min_words or complex_hit or rule_domain == "code" or len(user) > 1:
            cls = "B"
            why = [f"{words} words" if words >= s.b_min_words else "",
                   f"complex cue {complex_hit!r}" if complex_hit else "",
                   "code" if rule_domain == "code" else "",
                   f"{len(user)} user turns" if len(user) > 1 else ""]
            reasons.append(", ".join(w for w in why if w))
        else:
            reasons.append(f"{words} words, single turn, no complex cue")
        return Assessment(cls=cls, domain=domain, method="rules", reasons=reasons, findings=findings)


def start_tier(cls: Cls, tiers: list[TierSettings], settings: ClassifierSettings) -> str | None:
    """The tier a class starts at."""
    if cls in settings.start:
        return settings.start[cls]
    local = [t.name for t in tiers if t.kind == "local"]
    if not local:
        return tiers[0].name if tiers else None
    if cls == "A":
        return local[0]
    if cls == "B":
        return local[1] if len(local) > 1 else local[0]
    return local[-1]


CLASSIFY_PROMPT = (
    "Classify how hard this request is for a small assistant model.\n"
    "A = short factual or simple; B = needs some reasoning or code; C = long, multi-step or expert.\n"
    "Request: {text}\nClass:"
)


def read_class_from_logprobs(top: list[dict[str, float | str]]) -> tuple[Cls, float] | None:
    """The most probable of the letters A/B/C among one token's alternatives,
    with its probability normalised over the three."""
    import math

    mass = {"A": 0.0, "B": 0.0, "C": 0.0}
    for alt in top:
        tok = str(alt.get("token", "")).strip().upper()
        if tok in mass:
            mass[tok] += math.exp(float(alt.get("logprob", -100.0)))
    total = sum(mass.values())
    if total <= 0:
        return None
    best: Cls = max(mass, key=lambda k: mass[k])  # type: ignore[assignment]
    return best, mass[best] / total
