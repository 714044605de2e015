"""Private data does not leave: the detectors, the whole-conversation scan,
the gate's verdict, and the labelled set (perf/data/privacy.jsonl)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from sovereign.router import privacy as pv
from sovereign.router.classify import RuleClassifier
from sovereign.router.config import BudgetSettings, ClassifierSettings, EgressSettings, ProviderSettings
from sovereign.router.egress import EgressGate

ROOT = Path(__file__).resolve().parents[2]
P = ProviderSettings(name="cloud-standin", base_url="http://x")
OWNER = ["Jane Q. Doe", "12 Elm Street", "Doe Family Trust"]


def settings(never_leave: list[str] | None = None, **kw) -> EgressSettings:
    return EgressSettings(allow_providers=["cloud-standin"],
                          never_leave_domains=["financial"] if never_leave is None else never_leave,
                          daily_budget=BudgetSettings(calls=1000, tokens=10**9), **kw)


def route(messages: list[dict[str, str]], tmp_path: Path, **kw):
    """The assessment and the gate's decision for one conversation."""
    s = settings(**kw)
    a = RuleClassifier(ClassifierSettings()).assess(messages, s)
    return a, EgressGate(s, tmp_path / "egress.off").check(P, a.domain, 10, "r", findings=a.findings)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# ---------------------------------------------------------------- checksums and detectors

@pytest.mark.parametrize("iban", ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32",
                                  "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300",
                                  "be68 5390 0754 7034"])
def test_iban_valid(iban: str) -> None:
    assert pv.iban_valid(iban)
    assert pv.find_ibans(f"pay to {iban} today")


@pytest.mark.parametrize("iban", ["DE89 3704 0044 0532 0130 01", "GB82 WEST 1234 5698 7654 33",
                                  "NL91ABNA0417164301", "XX00 1234"])
def test_iban_invalid(iban: str) -> None:
    assert not pv.iban_valid(iban)
    assert not pv.find_ibans(f"pay to {iban} today")


def test_a_grouped_iban_followed_by_words() -> None:
    text = "IBAN DE89 3704 0044 0532 0130 00 and salary"
    (a, b), = pv.find_ibans(text)
    assert text[a:b] == "DE89 3704 0044 0532 0130 00"


@pytest.mark.parametrize(("number", "ok"), [
    ("4111 1111 1111 1111", True), ("5500-0000-0000-0004", True), ("3782 822463 10005", True),
    ("4111 1111 1111 1112", False), ("5500 0000 0000 0005", False),
    ("1234 5678 9012 3452", False),  # Luhn-valid, but no card network starts with 1
])
def test_card_luhn(number: str, ok: bool) -> None:
    assert pv.card_valid(number) is ok
    assert bool(pv.find_cards(f"my card {number}.")) is ok


def test_luhn() -> None:
    assert pv.luhn_valid("79927398713") and not pv.luhn_valid("79927398710")


@pytest.mark.parametrize(("number", "ok"), [("021000021", True), ("011000015", True),
                                            ("021000022", False), ("991000021", False), ("02100002", False)])
def test_aba_checksum(number: str, ok: bool) -> None:
    assert pv.aba_valid(number) is ok


def test_routing_needs_a_cue_to_be_strong() -> None:
    cued, bare = pv.find_routing("routing number 021000021")
    assert cued and not bare
    cued, bare = pv.find_routing("the code is 021000021")
    assert bare and not cued
    assert pv.find_routing("routing 021000022") == ([], [])


@pytest.mark.parametrize(("text", "found"), [
    ("Your account number is 12345678901.", True), ("acct no. 000123456789", True),
    ("card account ending in 4821", True), ("my account was opened in 2019", False),
    ("an account with 3 users", False),
])
def test_account_numbers(text: str, found: bool) -> None:
    assert bool(pv.find_accounts(text)) is found


@pytest.mark.parametrize(("text", "found"), [
    ("it costs $1,250.50", True), ("4,200 EUR a month", True), ("€3.400 net", True), ("CHF 500", True),
    ("52k USD", True), ("about 12 euros", True), ("version 3.11 of Python", False), ("echo $HOME", False),
])
def test_amounts(text: str, found: bool) -> None:
    assert bool(pv.find_amounts(text)) is found


@pytest.mark.parametrize(("text", "found"), [
    ("write to bob.smith@example.com today", True), ("jdoe@mail.example.org", True),
    ("the @decorator syntax", False), ("user@localhost", False),
])
def test_emails(text: str, found: bool) -> None:
    assert bool(pv.find_emails(text)) is found


@pytest.mark.parametrize(("text", "found"), [
    ("call +1 415 555 0132", True), ("(415) 555-0132", True), ("+44 20 7946 0958", True),
    ("07700 900123", True), ("06 12 34 56 78", True), ("0612345678", True),
    ("ping 192.168.1.10", False), ("on 2024-01-15", False), ("version 1.2.3", False), ("17 times 23", False),
])
def test_phones(text: str, found: bool) -> None:
    assert bool(pv.find_phones(text)) is found


@pytest.mark.parametrize(("text", "found"), [
    ("I'm jane q doe", True), ("JANE Q. DOE", True), ("Jane Doe", False), ("12 elm st.", True),
    ("12 Elm Streetwise", False), ("doe family trust", True), ("Jàne Q Dóe", True),
])
def test_owner_identifiers(text: str, found: bool) -> None:
    assert any(pv.find_identifier(pv.fold(text), i) for i in OWNER) is found


@pytest.mark.parametrize(("word", "base"), [
    ("debts", "debt"), ("Loans", "loan"), ("taxes", "tax"), ("investing", "invest"),
    ("investments", "investment"), ("diagnosed", "diagnose"), ("banking", "bank"), ("pharmacies", "pharmacy"),
    ("savings", "savings"), ("symptoms", "symptom"), ("emails", "email"),
])
def test_word_forms(word: str, base: str) -> None:
    assert base in pv.forms(pv.fold(word))


def test_terms_in_their_forms_and_not_lookalikes() -> None:
    lex = pv.Lexicon(pv.DEFAULT_TERMS)
    assert ("financial", "debt") in lex.find(pv.fold("My DEBTS and my Loans"))
    assert ("financial", "credit card") in lex.find(pv.fold("two Credit Cards"))
    assert lex.find(pv.fold("investigate the syntax of a taxi")) == []


# ---------------------------------------------------------------- the four probes, as written

PROBES = {
    "debts and loans, plural": user("How do I get out of my debts and loans?"),
    "savings and investments": user("Should I move my savings into investments?"),
    "IBAN and salary in the system message": [
        {"role": "system", "content": "The user's IBAN is DE89 3704 0044 0532 0130 00; salary 4,200 EUR."},
        {"role": "user", "content": "Help me plan next month."}],
    "account number in an earlier assistant turn": [
        {"role": "user", "content": "What was that number?"},
        {"role": "assistant", "content": "Your account number is 12345678901."},
        {"role": "user", "content": "Thanks. What next?"}],
}


@pytest.mark.parametrize("name", list(PROBES))
def test_the_four_probes_stay(name: str, tmp_path: Path) -> None:
    a, d = route(PROBES[name], tmp_path)
    assert a.domain == "financial", a.reasons
    assert not d.allowed and "never leaves" in d.reason


def test_the_probes_stay_even_when_unsure_may_leave(tmp_path: Path) -> None:
    for messages in PROBES.values():
        assert not route(messages, tmp_path, when_unsure="leave")[1].allowed


def test_the_reason_names_detector_and_message_never_the_value(tmp_path: Path) -> None:
    _, d = route(PROBES["IBAN and salary in the system message"], tmp_path)
    assert "IBAN (mod-97 valid) in message 0 (system)" in d.reason
    assert "DE89" not in d.reason and "3704" not in d.reason and "4,200" not in d.reason
    _, d = route(PROBES["account number in an earlier assistant turn"], tmp_path)
    assert "account number in message 1 (assistant)" in d.reason and "12345678901" not in d.reason
    msgs = [{"role": "system", "content": "You write for Jane Q. Doe."}, *user("A short bio, please.")]
    a, d = route(msgs, tmp_path, private_identifiers=OWNER)
    assert not d.allowed and a.domain == "personal"
    assert "owner identifier #1" in d.reason and "Jane" not in d.reason and "Doe" not in d.reason
    assert "Jane" not in " ".join(a.reasons)
    e = EgressGate.audit_entry(d)
    assert "Jane" not in e.reason


# ---------------------------------------------------------------- whole conversation

@pytest.mark.parametrize("role", ["system", "assistant", "tool", "user"])
def test_every_message_is_scanned(role: str, tmp_path: Path) -> None:
    msgs = [{"role": role, "content": "card 4111 1111 1111 1111"}, *user("What time is it in Tokyo?")]
    _, d = route(msgs, tmp_path)
    assert not d.allowed and f"message 0 ({role})" in d.reason


def test_tool_call_arguments_and_text_parts_are_scanned() -> None:
    s = pv.Scanner()
    calls = [{"role": "assistant", "content": None,
              "tool_calls": [{"function": {"name": "pay",
                                           "arguments": '{"iban": "NL91ABNA0417164300"}'}}]}]
    assert [f.detector for f in s.scan(calls)] == ["iban", "term"]
    parts = [{"role": "user", "content": [{"type": "text", "text": "my debts"}]}]
    assert s.scan(parts)[0].label == "financial term 'debt'"


def test_a_never_leave_term_in_an_earlier_turn_keeps_it_in(tmp_path: Path) -> None:
    msgs = [*user("hi"), {"role": "assistant", "content": "Your mortgage payment is due."},
            *user("ok, thanks")]
    a, d = route(msgs, tmp_path)
    assert a.domain == "financial" and not d.allowed
    assert "financial term 'mortgage' in message 1 (assistant)" in d.reason


def test_a_general_conversation_leaves(tmp_path: Path) -> None:
    msgs = [{"role": "system", "content": "You are helpful."}, *user("Why is the sky blue?"),
            {"role": "assistant", "content": "Rayleigh scattering."}, *user("And sunsets?")]
    a, d = route(msgs, tmp_path)
    assert a.domain == "general" and d.allowed and a.findings == []


# ---------------------------------------------------------------- when unsure

def test_when_unsure_stay_keeps_a_weak_signal_in(tmp_path: Path) -> None:
    # communications may leave here; an e-mail address alone is a weak signal
    msgs = user("Format this for a letterhead: contact sam@example.org")
    a, d = route(msgs, tmp_path)
    assert a.domain == "communications" and not d.allowed
    assert d.reason.startswith("unsure, kept in (egress.when_unsure: stay): e-mail address in message 0")
    assert "sam@" not in d.reason


def test_when_unsure_leave_lets_a_weak_signal_out(tmp_path: Path) -> None:
    _, d = route(user("Format this for a letterhead: contact sam@example.org"), tmp_path,
                 when_unsure="leave")
    assert d.allowed and "unsure, let out (egress.when_unsure: leave)" in d.reason


def test_a_cue_is_unsure_a_term_is_sure(tmp_path: Path) -> None:
    assert not route(user("Can I afford a new bike?"), tmp_path)[1].allowed
    assert route(user("Can I afford a new bike?"), tmp_path, when_unsure="leave")[1].allowed
    assert not route(user("Can I afford a new mortgage?"), tmp_path, when_unsure="leave")[1].allowed


def test_strong_data_stays_whatever_the_domain_list() -> None:
    f = pv.Scanner().scan(user("card 4111 1111 1111 1111"))
    assert pv.decide(f, [], "leave").stay
    assert not pv.decide(pv.Scanner().scan(user("my debts")), [], "leave").stay


def test_private_terms_extend_the_lexicon(tmp_path: Path) -> None:
    assert route(user("Wie hoch sind meine Schulden?"), tmp_path)[1].allowed
    d = route(user("Wie hoch sind meine Schulden?"), tmp_path, private_terms={"financial": ["schulden"]})[1]
    assert not d.allowed and "financial term 'schulden'" in d.reason


# ---------------------------------------------------------------- the labelled set

def _perf():
    spec = importlib.util.spec_from_file_location("perf_privacy", ROOT / "perf" / "privacy.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_labelled_set_leaks_nothing() -> None:
    perf = _perf()
    rows = perf.load()
    kinds = {r["kind"] for r in rows}
    assert len(rows) >= 200 and {"financial", "health", "communications", "general", "hidden"} <= kinds
    r = perf.measure(rows)
    assert r["private"] >= 100 and r["general"] >= 50
    assert r["leaked"] == 0, r["leaks"]
    assert r["over_block_rate"] <= 0.10, r["over_blocks"]


def test_the_measure_can_fail() -> None:
    """A private prompt that nothing detects is counted as a leak."""
    perf = _perf()
    r = perf.measure([{"messages": user("Tell me about my week."), "private": True, "kind": "x"},
                      {"messages": user("my debts"), "private": False, "kind": "general"}])
    assert (r["leaked"], r["over_blocked"]) == (1, 1)
