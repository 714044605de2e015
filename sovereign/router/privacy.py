"""Private data in a conversation: what is found, where, and whether it may leave.

Every message is scanned (system, user, assistant, tool results), not only
the last user text. Three kinds of finding, each naming its detector, the
domain it belongs to, and the message (role and index) it was found in,
never the value itself:

- `data`: the data itself.
  Strong (the checksum or the context leaves no doubt): `iban` (ISO 13616,
  mod-97), `card` (13-19 digits, a card-network prefix, Luhn), `routing` (an
  ABA routing number: 9 digits, ABA checksum, with a cue such as "routing"
  or "ABA" before it), `account` (6+ digits after "account", "acct", "a/c"),
  `identifier` (one of the owner's own identifiers, `egress.private_identifiers`:
  names, addresses, account names; case, accents and spacing ignored).
  Weak (may be harmless): `amount` (an amount with a currency), `email`,
  `phone`, `routing?` (a 9-digit number with a valid ABA checksum and no
  cue), `number` (a run of 12-19 digits that fails every checksum: a card or
  account number mistyped or cut).
- `term`: a word of a private domain's lexicon (financial, health,
  communications, and `egress.private_terms`), in any of its forms: case,
  plural, possessive and inflection ("Debts", "loans", "investing",
  "diagnosed") are reduced to a base form before lookup.
- `cue`: an ambiguous word ("money", "rent", "pain"): a weak hint of a
  private domain.

`decide` turns findings into the gate's verdict:
- **stay** (whatever `egress.when_unsure` says): a strong data finding, or a
  term or data finding of a domain in `egress.never_leave_domains`;
- **unsure**: nothing above, but a weak data finding or a cue (of any
  domain); the request stays when `egress.when_unsure` is `stay` (the
  default) and may leave when it is `leave`;
- otherwise nothing private was found: privacy does not stop the request.

Pure functions over text; the standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel

Kind = Literal["data", "term", "cue"]


class Finding(BaseModel):
    """One detector that fired, where, and never the value it matched."""

    detector: str  # iban, card, routing, account, identifier, amount, email, phone, number, term, cue
    domain: str
    kind: Kind
    strong: bool
    role: str
    index: int
    label: str  # what to show: "IBAN (mod-97 valid)", "term 'debt'", "owner identifier #1"

    def where(self) -> str:
        return f"message {self.index} ({self.role})"

    def describe(self) -> str:
        return f"{self.label} in {self.where()}"


class Verdict(BaseModel):
    stay: bool
    sure: bool
    reason: str
    findings: list[Finding] = []


# ---------------------------------------------------------------- checksums

def iban_valid(candidate: str) -> bool:
    """ISO 13616: country code, two check digits, 11-30 alphanumerics; the
    number formed by moving the first four characters to the end (letters as
    10-35) is 1 modulo 97."""
    s = re.sub(r"[\s-]", "", candidate).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    digits = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(digits) % 97 == 1


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if len(digits) < 2:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CARD_PREFIX = re.compile(r"^(4|5[1-5]|2[2-7]|3[47]|3[0689]|6)")


def card_valid(number: str) -> bool:
    """A payment card number: 13-19 digits, a card network's prefix (Visa,
    Mastercard, Amex, Diners, Discover/UnionPay/Maestro), Luhn."""
    digits = re.sub(r"\D", "", number)
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn_valid(digits)


def aba_valid(number: str) -> bool:
    """An ABA routing transit number: 9 digits, a Federal Reserve prefix
    (00-12, 21-32, 61-72, 80), 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 mod 10."""
    d = re.sub(r"\D", "", number)
    if len(d) != 9:
        return False
    p = int(d[:2])
    if not (p <= 12 or 21 <= p <= 32 or 61 <= p <= 72 or p == 80):
        return False
    n = [int(c) for c in d]
    return (3 * (n[0] + n[3] + n[6]) + 7 * (n[1] + n[4] + n[7]) + (n[2] + n[5] + n[8])) % 10 == 0


# ---------------------------------------------------------------- data detectors
# Each returns the (start, end) spans it claims, so that a later detector does
# not report the same digits again (a card number is not also a phone number).

Span = tuple[int, int]

_IBAN_START = re.compile(r"\b[A-Z]{2}\d{2}(?=[ \-]?[A-Z0-9])", re.IGNORECASE)
_IBAN_BODY = re.compile(r"(?:[ \-]?[A-Z0-9]){11,30}", re.IGNORECASE)


def find_ibans(text: str) -> list[Span]:
    out: list[Span] = []
    for m in _IBAN_START.finditer(text):
        body = _IBAN_BODY.match(text, m.end())
        if body is None:
            continue
        # The longest prefix that validates (a grouped IBAN followed by a word
        # would otherwise swallow the word).
        end = body.end()
        while end > m.end():
            chunk = text[m.start():end]
            if text[end - 1] not in " -" and iban_valid(chunk):
                out.append((m.start(), end))
                break
            end -= 1
    return out


_DIGIT_RUN = re.compile(r"(?<![\w.,])\d(?:[ \-]?\d){8,22}(?![\w])")


def _digit_runs(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _DIGIT_RUN.finditer(text):
        yield m.start(), m.end(), re.sub(r"\D", "", m.group(0))


def find_cards(text: str) -> list[Span]:
    return [(a, b) for a, b, d in _digit_runs(text) if 13 <= len(d) <= 19 and card_valid(d)]


_ROUTING_CUE = re.compile(r"\b(routing|aba|rtn|transit|sort code|bank code|bic|swift)\b[^\d\n]{0,30}$",
                          re.IGNORECASE)


def find_routing(text: str) -> tuple[list[Span], list[Span]]:
    """(with a routing cue before them, without one): 9-digit numbers with a valid ABA checksum."""
    cued: list[Span] = []
    bare: list[Span] = []
    for a, b, d in _digit_runs(text):
        if len(d) == 9 and aba_valid(d):
            (cued if _ROUTING_CUE.search(text[max(0, a - 40):a]) else bare).append((a, b))
    return cued, bare


_ACCOUNT = re.compile(r"\b(?:account|acct|a/c|acc)s?\b"
                      r"(?:\s*(?:number|num|no\.?|nr\.?|#|id|ending in|ends in))?"
                      r"[^\d\n]{0,25}?(\d(?:[ \-]?\d){3,19})(?!\d)", re.IGNORECASE)


def find_accounts(text: str) -> list[Span]:
    """Account numbers: 6+ digits after an account cue (4+ after "ending in")."""
    out: list[Span] = []
    for m in _ACCOUNT.finditer(text):
        digits = re.sub(r"\D", "", m.group(1))
        ending = re.search(r"end(?:ing|s) in", m.group(0), re.IGNORECASE) is not None
        if len(digits) >= 6 or (ending and len(digits) >= 4):
            out.append(m.span(1))
    return out


_CUR = (r"usd|eur|gbp|chf|jpy|cad|aud|sek|nok|dkk|pln|inr|cny|dollars?|euros?|pounds?|francs?|yen|"
        r"rupees?|bucks")
_NUM = r"\d{1,3}(?:[,.' ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_AMOUNT = re.compile(rf"[$€£¥₹]\s?(?:{_NUM})\s?(?:k|m|bn|million|thousand)?\b|"
                     rf"\b(?:{_CUR})\s?(?:{_NUM})\b|"
                     rf"\b(?:{_NUM})\s?(?:k|m|bn|million|thousand)?\s?(?:{_CUR})\b", re.IGNORECASE)


def find_amounts(text: str) -> list[Span]:
    return [m.span() for m in _AMOUNT.finditer(text)]


_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")


def find_emails(text: str) -> list[Span]:
    return [m.span() for m in _EMAIL.finditer(text)]


_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d{2,5}(?:[ .\-]\d{2,6}){1,4}"
                    r"(?![\w])|(?<![\w+])\+\d{8,14}(?!\w)|(?<![\w+])0\d{9,10}(?!\w)")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


def find_phones(text: str) -> list[Span]:
    """Phone numbers: 9-15 digits in groups (a leading +, brackets, spaces,
    dots or dashes), not an IPv4 address or a date."""
    out: list[Span] = []
    for m in _PHONE.finditer(text):
        s = m.group(0)
        digits = re.sub(r"\D", "", s)
        if not 9 <= len(digits) <= 15 or _IPV4.match(s) or _DATE.match(s):
            continue
        if not (s.startswith("+") or "(" in s or re.search(r"[ \-]", s) or len(digits) >= 10):
            continue
        out.append(m.span())
    return out


def find_long_numbers(text: str) -> list[Span]:
    """12-19 digits in one run (spaces or dashes allowed): what a card or
    account number looks like, checksum or not."""
    return [(a, b) for a, b, d in _digit_runs(text) if 12 <= len(d) <= 19]


def fold(text: str) -> str:
    """Case-folded, accents removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text.casefold())


_ABBREVIATIONS = {"street": "st", "avenue": "ave", "road": "rd", "boulevard": "blvd", "drive": "dr",
                  "lane": "ln", "place": "pl", "square": "sq", "apartment": "apt", "strasse": "str",
                  "saint": "st", "mount": "mt", "north": "n", "south": "s", "east": "e", "west": "w"}
_ABBREV = re.compile(r"\b(" + "|".join(_ABBREVIATIONS) + r")\b")


def _abbreviate(folded: str) -> str:
    return _ABBREV.sub(lambda m: _ABBREVIATIONS[m.group(1)], folded)


def find_identifier(text_folded: str, identifier: str) -> bool:
    """One of the owner's identifiers in folded text, as whole words; spacing,
    punctuation and the usual address abbreviations (Street/St., Avenue/Ave)
    do not matter."""
    text_folded = _abbreviate(text_folded)
    ident = _abbreviate(fold(identifier).strip())
    if len(ident) < 3:
        return False
    parts = [re.escape(p) for p in re.split(r"[\s,.\-]+", ident) if p]
    pattern = r"(?<!\w)" + r"[\s,.\-]*".join(parts) + r"(?!\w)"
    return re.search(pattern, text_folded) is not None


# ---------------------------------------------------------------- domain terms

FINANCIAL = (
    "bank", "iban", "bic", "invoice", "salary", "wage", "payroll", "paycheck", "payslip",
    "paystub", "tax", "taxation", "taxable", "debit", "debt", "debtor", "loan", "lender", "mortgage",
    "remortgage", "refinance", "savings", "investment", "invest", "investor", "portfolio",
    "stock", "dividend", "pension", "retirement", "401k", "brokerage", "overdraft", "income",
    "bankrupt", "bankruptcy", "finance", "financial", "budget", "expense", "revenue", "earnings",
    "accountant", "insurance", "annuity", "etf", "bitcoin", "creditor", "alimony", "inheritance",
    "payout", "deposit", "withdrawal", "cheque",
)
FINANCIAL_PHRASES = (
    "credit card", "debit card", "credit score", "credit report", "credit limit", "credit line",
    "account number", "bank account", "sort code", "routing number", "interest rate", "net worth",
    "tax return", "capital gain", "mutual fund", "index fund", "wire transfer", "my money",
    "my account", "my balance", "account balance", "student loan", "roth ira", "checking account",
    "swift code", "swift transfer", "my bonus", "my shares",
)
HEALTH = (
    "diagnosis", "diagnose", "symptom", "medication", "medicine", "medical", "prescription", "prescribe",
    "dose", "dosage", "disease", "illness", "patient", "therapy", "therapist", "blood", "doctor",
    "physician", "clinic", "hospital", "allergy", "allergic", "surgery", "cancer", "tumor", "tumour",
    "diabetes", "diabetic", "depression", "anxiety", "pregnant", "pregnancy", "vaccine", "vaccination",
    "infection", "fever", "migraine", "headache", "rash", "insulin", "antibiotic", "cholesterol",
    "nurse", "injury", "ibuprofen", "paracetamol", "acetaminophen", "chemotherapy", "asthma", "covid",
    "flu", "cough", "hiv", "pharmacy", "pharmacist", "psychiatrist", "psychologist", "dentist",
    "antidepressant", "ssri", "adhd", "autism", "biopsy", "mri", "ecg", "ekg", "seizure", "epilepsy",
    "arthritis", "eczema", "nausea", "diarrhea", "diarrhoea", "miscarriage", "contraception",
    "sti", "rehab", "addiction", "addict", "painkiller", "opioid", "oncology", "oncologist",
    "cardiology", "cardiologist", "dermatologist", "neurologist", "gynecologist", "gynaecologist",
    "urologist", "radiology", "physiotherapy", "physiotherapist",
    "overdose", "insomnia", "hypertension", "thyroid", "lump",
    "sick", "gp", "ailment",
)
HEALTH_PHRASES = (
    "blood pressure", "blood test", "side effect", "mental health", "test result", "lab result",
    "x ray", "my health", "health record", "heart attack", "sleeping pill", "birth control",
)
COMMUNICATIONS = (
    "email", "inbox", "sms", "voicemail", "whatsapp", "telegram", "messenger", "dm", "mailbox",
    "imessage", "wechat", "correspondence",
)
COMMUNICATIONS_PHRASES = (
    "e mail", "text message", "phone call", "chat log", "signal message", "direct message",
    "my messages", "contact list", "call log", "phone number", "my contacts", "group chat",
)
# Ambiguous words: a weak hint, never decisive alone.
CUES: dict[str, tuple[str, ...]] = {
    "financial": ("money", "rent", "bill", "credit", "balance", "afford", "owe", "spending", "payment",
                  "cash", "wallet", "transaction", "refund", "landlord", "fund", "bonus"),
    "health": ("pain", "hurt", "ache", "tired", "diet", "pill", "treatment", "mood", "stroke", "weight loss"),
    "communications": ("texted", "messaged", "called me"),
}

DEFAULT_TERMS: dict[str, tuple[str, ...]] = {
    "financial": FINANCIAL + FINANCIAL_PHRASES,
    "health": HEALTH + HEALTH_PHRASES,
    "communications": COMMUNICATIONS + COMMUNICATIONS_PHRASES,
}

_WORD = re.compile(r"[a-z0-9]+")
_SUFFIXES = (("ies", "y"), ("ied", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"),
             ("ed", ""), ("ed", "e"), ("ly", ""), ("al", ""))


def forms(token: str) -> set[str]:
    """A folded word and the base forms it may be an inflection of
    (debts → debt, taxes → tax, investing → invest, diagnosed → diagnose,
    banking → bank, planning → plan, policies → policy); two rounds, so
    "savings" also gives "saving"."""
    out = {token}
    frontier = [token]
    for _ in range(2):
        nxt: list[str] = []
        for tok in frontier:
            for suf, rep in _SUFFIXES:
                if tok.endswith(suf) and len(tok) - len(suf) >= 2:
                    base = tok[: -len(suf)] + rep
                    nxt.append(base)
                    if not rep and len(base) > 3 and base[-1] == base[-2] and base[-1] not in "aeiouls":
                        nxt.append(base[:-1])
        out.update(nxt)
        frontier = nxt
    return out


class Lexicon:
    """Base-form words and phrases per domain."""

    def __init__(self, terms: Mapping[str, Iterable[str]]) -> None:
        self.words: dict[str, str] = {}
        self.phrases: list[tuple[tuple[str, ...], str, str]] = []
        for domain, items in terms.items():
            for item in items:
                toks = tuple(_WORD.findall(fold(item)))
                if len(toks) == 1:
                    self.words.setdefault(toks[0], domain)
                elif toks:
                    self.phrases.append((toks, domain, " ".join(toks)))

    def find(self, text_folded: str) -> list[tuple[str, str]]:
        """(domain, base term) for each distinct term in the text, in order."""
        tokens = _WORD.findall(text_folded)
        cands = [forms(t) for t in tokens]
        seen: dict[str, str] = {}
        for phrase, domain, label in self.phrases:
            n = len(phrase)
            for i in range(len(tokens) - n + 1):
                if all(phrase[j] in cands[i + j] for j in range(n)):
                    seen.setdefault(label, domain)
                    break
        for c in cands:
            for f in sorted(c, key=len, reverse=True):
                if f in self.words:
                    seen.setdefault(f, self.words[f])
                    break
        return [(d, t) for t, d in seen.items()]


def merged_terms(extra: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    terms = dict(DEFAULT_TERMS)
    for domain, items in (extra or {}).items():
        terms[domain] = terms.get(domain, ()) + tuple(items)
    return terms


# ---------------------------------------------------------------- the scan

def _content(msg: Mapping[str, object]) -> str:
    c = msg.get("content")
    if isinstance(c, list):  # text parts
        c = "\n".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
    text = "" if c is None else str(c)
    calls = msg.get("tool_calls")
    if isinstance(calls, list):  # an assistant turn's tool calls: their arguments
        args = [str((tc.get("function") or {}).get("arguments", "")) for tc in calls if isinstance(tc, dict)]
        text = "\n".join([text, *args])
    return text


def _overlaps(span: Span, taken: list[Span]) -> bool:
    return any(span[0] < b and a < span[1] for a, b in taken)


class Scanner:
    def __init__(self, identifiers: Sequence[str] = (),
                 terms: Mapping[str, Sequence[str]] | None = None) -> None:
        self.identifiers = [i for i in identifiers if i and i.strip()]
        self.lexicon = Lexicon(merged_terms(terms))
        self.cues = Lexicon(CUES)

    def scan_text(self, text: str, role: str, index: int) -> list[Finding]:
        out: list[Finding] = []

        def add(detector: str, domain: str, kind: Kind, strong: bool, label: str) -> None:
            out.append(Finding(detector=detector, domain=domain, kind=kind, strong=strong, role=role,
                               index=index, label=label))

        taken: list[Span] = []

        def claim(spans: list[Span]) -> list[Span]:
            new = [s for s in spans if not _overlaps(s, taken)]
            taken.extend(new)
            return new

        if claim(find_ibans(text)):
            add("iban", "financial", "data", True, "IBAN (mod-97 valid)")
        if claim(find_cards(text)):
            add("card", "financial", "data", True, "card number (Luhn valid)")
        cued, bare = find_routing(text)
        if claim(cued):
            add("routing", "financial", "data", True, "routing number (ABA checksum valid)")
        if claim(find_accounts(text)):
            add("account", "financial", "data", True, "account number")
        if claim(bare):
            add("routing?", "financial", "data", False, "9-digit number with a valid ABA checksum")
        if claim(find_emails(text)):
            add("email", "communications", "data", False, "e-mail address")
        if claim(find_long_numbers(text)):
            add("number", "financial", "data", False, "long digit run (card/account-like)")
        if claim(find_phones(text)):
            add("phone", "communications", "data", False, "phone number")
        if claim(find_amounts(text)):
            add("amount", "financial", "data", False, "amount with a currency")
        folded = fold(text)
        for n, ident in enumerate(self.identifiers, 1):
            if find_identifier(folded, ident):
                add("identifier", "personal", "data", True,
                    f"owner identifier #{n} (egress.private_identifiers)")
        terms = self.lexicon.find(folded)
        for domain, term in terms:
            add("term", domain, "term", False, f"{domain} term {term!r}")
        term_domains = {d for d, _ in terms}
        for domain, cue in self.cues.find(folded):
            if domain not in term_domains:
                add("cue", domain, "cue", False, f"{domain} cue {cue!r}")
        return out

    def scan(self, messages: Sequence[Mapping[str, object]]) -> list[Finding]:
        """Every message of the conversation, in order."""
        out: list[Finding] = []
        for i, msg in enumerate(messages):
            out.extend(self.scan_text(_content(msg), str(msg.get("role", "?")), i))
        return out


def place(findings: Sequence[Finding], rule_domain: str, never_leave: Sequence[str]) -> str:
    """The request's domain: a strong data finding's, else a never-leave
    domain (the rules', then a finding's), else the rules' (when they placed
    it), else a term's or a data finding's, else general (a cue alone never
    places a request: it only makes the gate unsure)."""
    for f in findings:
        if f.strong:
            return f.domain
    if rule_domain in never_leave:
        return rule_domain
    for f in findings:
        if f.kind != "cue" and f.domain in never_leave:
            return f.domain
    if rule_domain != "general":
        return rule_domain
    for kind in ("term", "data"):
        for f in findings:
            if f.kind == kind:
                return f.domain
    return "general"


def _summary(findings: Sequence[Finding], limit: int = 3) -> str:
    parts = [f.describe() for f in findings[:limit]]
    more = len(findings) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decide(findings: Sequence[Finding], never_leave: Sequence[str],
           when_unsure: Literal["stay", "leave"] = "stay") -> Verdict:
    """Whether privacy keeps a request in the cluster, and why (module docstring)."""
    sure = [f for f in findings if f.strong]
    if sure:
        return Verdict(stay=True, sure=True, findings=list(findings),
                       reason=f"private data never leaves the cluster: {_summary(sure)}")
    domain = [f for f in findings if f.kind != "cue" and f.domain in never_leave]
    if domain:
        return Verdict(stay=True, sure=True, findings=list(findings),
                       reason=(f"domain {domain[0].domain!r} never leaves the cluster "
                               f"(egress.never_leave_domains): {_summary(domain)}"))
    weak = [f for f in findings if (f.kind == "data" and not f.strong) or f.kind == "cue"]
    if weak:
        if when_unsure == "stay":
            return Verdict(stay=True, sure=False, findings=list(findings),
                           reason=f"unsure, kept in (egress.when_unsure: stay): {_summary(weak)}")
        return Verdict(stay=False, sure=False, findings=list(findings),
                       reason=f"unsure, let out (egress.when_unsure: leave): {_summary(weak)}")
    return Verdict(stay=False, sure=True, findings=list(findings), reason="no private data found")
