from __future__ import annotations

import pytest

from sovereign.router.classify import RuleClassifier, read_class_from_logprobs, start_tier
from sovereign.router.config import ClassifierSettings, TierSettings

C = RuleClassifier(ClassifierSettings())
TIERS = [TierSettings(name="s1", kind="local", endpoint="http://a"),
         TierSettings(name="s15", kind="local", endpoint="http://b"),
         TierSettings(name="s2", kind="local", endpoint="http://c"),
         TierSettings(name="cloud", kind="cloud", provider="p")]


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize(("text", "cls", "domain"), [
    ("What is the capital of France?", "A", "general"),
    ("What is my bank account balance?", "A", "financial"),
    ("Which medication helps with a migraine?", "A", "health"),
    ("Forward this email to Bob", "A", "communications"),
    ("Fix this Python traceback please", "B", "code"),
    ("Explain why the sky is blue", "B", "general"),
    ("Design a fault-tolerant " + "storage system with replication " * 10, "C", "general"),
    ("word " * 250, "C", "general"),
])
def test_rules(text: str, cls: str, domain: str) -> None:
    a = C.assess(_user(text))
    assert (a.cls, a.domain) == (cls, domain), a.reasons
    assert a.method == "rules" and a.reasons


def test_multi_turn_is_at_least_b() -> None:
    msgs = [*_user("hi"), {"role": "assistant", "content": "hello"}, *_user("and then?")]
    assert C.assess(msgs).cls == "B"


def test_class_picks_the_starting_tier() -> None:
    s = ClassifierSettings()
    assert [start_tier(c, TIERS, s) for c in "ABC"] == ["s1", "s15", "s2"]
    assert start_tier("C", TIERS, ClassifierSettings(start={"C": "cloud"})) == "cloud"


def test_custom_domain_rules() -> None:
    c = RuleClassifier(ClassifierSettings(domains={"legal": [r"\bcontract\b"]}))
    assert c.assess(_user("Review this contract")).domain == "legal"
    a = c.assess(_user("What is my bank balance?"))
    # The rules no longer name finance; the privacy lexicon still does.
    assert a.reasons[0] == "domain general (no domain rule matched)" and a.domain == "financial"


def test_class_from_logprobs() -> None:
    got = read_class_from_logprobs([{"token": " B", "logprob": -0.2}, {"token": "A", "logprob": -1.9},
                                    {"token": "The", "logprob": -0.5}])
    assert got is not None and got[0] == "B" and 0.8 < got[1] < 0.9
    assert read_class_from_logprobs([{"token": "x", "logprob": -0.1}]) is None
