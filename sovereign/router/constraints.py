"""What changes an answer: the signature two prompts must share to match semantically.

An embedding measures what a prompt is *about*; it barely sees what the
answer must *be*. Measured with all-MiniLM-L6-v2, "Explain photosynthesis in
one sentence." vs "…in detail." is 0.95, "How do I bake bread?" vs "How do I
bake bread without an oven?" 0.93 and "What is a black hole? Answer in
French." vs the same question alone 0.94: no threshold tells these apart from
paraphrases (0.92-0.98). So a semantic match also requires an equal
`signature()`, which reads from the prompt, with word lists and no model:

- ``numbers``: the digits, and the number words that count something
  ("three examples", "one sentence"), as digits;
- ``negated``: whether the prompt negates or excludes (not, never, no,
  without, except, avoid, n't, ...);
- ``length``: ``short`` (briefly, in one sentence, concise, tl;dr, ...) or
  ``long`` (in detail, thorough, in depth, step by step, ...);
- ``languages``: the natural and programming languages named (French, in
  Python, ...);
- ``tone``, ``formats`` (list, table, JSON, code, bullet points, poem,
  email, examples, ...), ``audience`` (a child, beginners, experts, ...);
- ``extremes``: the superlatives and comparatives, by direction ("largest"
  and "biggest" are one, "smallest" another);
- ``asks``: a question about a time or a reason (when, why), which a
  question about the same thing's what or how does not answer;
- ``clauses``: the words that add a condition or a second demand (if,
  unless, only, but, also, and then, as well as, instead of, compared to,
  ...), and the number of demands (sentences other than greetings and
  thanks).

The lists are English; a prompt in another language has an empty or sparse
signature, and its matches rest on the embedding and the numbers. The cost of
a word the lists miss is a false hit; the cost of a word they catch in a
paraphrase is one more cloud call. Measured on perf/data/crystal_pairs.jsonl
by perf/crystals.py (docs/router.md, Crystallization).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Signature", "numbers_of", "signature"]

_NUM = re.compile(r"\d+(?:[.,]\d+)?")


def numbers_of(text: str) -> tuple[str, ...]:
    """The digits in a prompt ("2+2" and "2+3" embed within 0.89 of each other)."""
    return tuple(sorted(_NUM.findall(text)))


@dataclass(frozen=True)
class Signature:
    """The parts of a prompt that change its answer; compare with ``==``."""

    numbers: tuple[str, ...] = ()
    negated: bool = False
    length: str = ""
    languages: frozenset[str] = frozenset()
    tone: frozenset[str] = frozenset()
    formats: frozenset[str] = frozenset()
    audience: frozenset[str] = frozenset()
    extremes: frozenset[str] = frozenset()
    asks: frozenset[str] = frozenset()
    clauses: tuple[str, ...] = ()
    demands: int = 1


def _alts(*words: str) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _classes(table: dict[str, tuple[str, ...]]) -> list[tuple[str, re.Pattern[str]]]:
    return [(name, re.compile(rf"(?<![\w+#])(?:{_alts(*words)})(?![\w+#])")) for name, words in table.items()]


_NUMBER_WORDS = {
    "one": "1",
    "a single": "1",
    "single": "1",
    "two": "2",
    "a couple of": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "twenty": "20",
    "fifty": "50",
    "hundred": "100",
    "a hundred": "100",
    "a dozen": "12",
    "dozen": "12",
}
_UNITS = (
    "sentences?",
    "words?",
    "lines?",
    "paragraphs?",
    "bullets?",
    "bullet points?",
    "points?",
    "items?",
    "examples?",
    "steps?",
    "reasons?",
    "ways?",
    "tips?",
    "ideas?",
    "questions?",
    "options?",
    "names?",
    "facts?",
    "things?",
    "pages?",
    "minutes?",
    "hours?",
    "days?",
    "weeks?",
    "months?",
    "years?",
    "people",
    "persons?",
    "players?",
    "cups?",
    "servings?",
    "times?",
    "languages?",
    "countries",
    "country",
    "cities",
    "city",
    "books?",
    "films?",
    "movies?",
    "songs?",
    "verses?",
    "stanzas?",
    "syllables?",
    "characters?",
    "letters?",
    "digits?",
    "decimal places?",
    "rows?",
    "columns?",
    "colou?rs?",
    "animals?",
    "planets?",
    "kids?",
    "children",
    "child",
)
_COUNTED = re.compile(rf"\b({_alts(*_NUMBER_WORDS)})(?:[\s-]+\w+)?[\s-]+(?:{'|'.join(_UNITS)})\b")
_OLD = re.compile(rf"\b({_alts(*_NUMBER_WORDS)})[\s-]+years?[\s-]+old\b")

_NEGATION = re.compile(
    r"(?<!\w)(?:not|no|never|none|nothing|nobody|nowhere|neither|nor|without|except|"
    r"excluding|exclude|avoid|avoiding|cannot|unable|lacks?|lacking|free of|instead of|"
    r"other than|apart from|minus|non-[a-z]+|[a-z]+n't)(?!\w)"
)
# Fixed phrases whose "no"/"not" negates nothing.
_NOT_NEGATION = re.compile(
    r"\b(?:no matter|not only|whether or not|or not|no doubt|not just|no longer than|"
    r"no more than|not more than|not exceeding|yes or no)\b"
)

_LENGTH = {
    "short": (
        "briefly",
        "brief",
        "short",
        "concise",
        "concisely",
        "succinct",
        "succinctly",
        "in a nutshell",
        "tl;dr",
        "tldr",
        "in a word",
        "in one word",
        "in a sentence",
        "in one sentence",
        "one-liner",
        "one liner",
        "in a few words",
        "few words",
        "summarize",
        "summarise",
        "summary",
        "sum up",
        "one sentence",
        "a single sentence",
        "one word",
        "a single word",
        "one line",
        "a single line",
        "the gist",
        "at a glance",
        "keep it short",
        "just the answer",
        "only the answer",
        "yes or no",
        "no more than",
        "not more than",
        "at most",
        "quick answer",
        "quick summary",
        "short answer",
    ),
    "long": (
        "in detail",
        "detailed",
        "in depth",
        "in-depth",
        "thorough",
        "thoroughly",
        "comprehensive",
        "comprehensively",
        "elaborate",
        "at length",
        "long answer",
        "long explanation",
        "lengthy",
        "extensive",
        "extensively",
        "fully",
        "full explanation",
        "exhaustive",
        "exhaustively",
        "deep dive",
        "step by step",
        "step-by-step",
        "walk me through",
        "everything about",
        "all about",
        "essay",
        "at least",
        "in full",
        "complete guide",
        "long-form",
    ),
}
_LENGTH_RE = _classes(_LENGTH)

_LANGUAGES = {
    # natural languages (and their peoples' adjectives: a change of either changes the answer)
    "english": ("english",),
    "french": ("french", "français", "francais"),
    "spanish": ("spanish", "español"),
    "german": ("german", "deutsch"),
    "italian": ("italian",),
    "portuguese": ("portuguese",),
    "dutch": ("dutch",),
    "russian": ("russian",),
    "chinese": ("chinese", "mandarin", "cantonese"),
    "japanese": ("japanese",),
    "korean": ("korean",),
    "arabic": ("arabic",),
    "hindi": ("hindi",),
    "turkish": ("turkish",),
    "polish": ("polish",),
    "swedish": ("swedish",),
    "greek": ("greek",),
    "latin": ("latin",),
    "hebrew": ("hebrew",),
    "vietnamese": ("vietnamese",),
    "thai": ("thai",),
    "norwegian": ("norwegian",),
    "danish": ("danish",),
    "finnish": ("finnish",),
    "czech": ("czech",),
    "ukrainian": ("ukrainian",),
    "indonesian": ("indonesian",),
    "esperanto": ("esperanto",),
    "swahili": ("swahili",),
    "bengali": ("bengali",),
    "persian": ("persian", "farsi"),
    # programming and data languages
    "python": ("python", "py"),
    "javascript": ("javascript", "js", "node.js", "nodejs"),
    "typescript": ("typescript", "ts"),
    "java": ("java",),
    "c++": ("c++", "cpp"),
    "c#": ("c#", "csharp"),
    "c": ("in c", "c code", "c program", "c language"),
    "go": ("golang", "in go", "go code"),
    "rust": ("in rust", "rust code", "rustlang"),
    "ruby": ("ruby",),
    "php": ("php",),
    "sql": ("sql",),
    "kotlin": ("kotlin",),
    "swift": ("in swift", "swift code", "swiftui"),
    "haskell": ("haskell",),
    "scala": ("scala",),
    "perl": ("perl",),
    "lua": ("lua",),
    "r": ("in r", "r code", "r language"),
    "bash": ("bash", "shell script", "shell", "zsh", "sh"),
    "powershell": ("powershell",),
    "matlab": ("matlab",),
    "julia": ("julia",),
    "elixir": ("elixir",),
    "dart": ("dart",),
    "assembly": ("assembly", "asm"),
    "fortran": ("fortran",),
    "cobol": ("cobol",),
}
_LANGUAGE_RE = _classes(_LANGUAGES)

_TONE = {
    "formal": (
        "formal",
        "formally",
        "professional",
        "professionally",
        "polite",
        "politely",
        "business-like",
        "businesslike",
        "official",
    ),
    "casual": (
        "casual",
        "casually",
        "informal",
        "informally",
        "friendly",
        "conversational",
        "chatty",
        "relaxed",
        "slang",
    ),
    "funny": (
        "funny",
        "humorous",
        "humorously",
        "joke",
        "jokes",
        "joking",
        "witty",
        "playful",
        "playfully",
        "silly",
        "comedic",
        "hilarious",
        "pun",
        "puns",
        "lighthearted",
        "light-hearted",
    ),
    "serious": ("serious", "seriously", "sober", "solemn"),
    "sarcastic": ("sarcastic", "sarcastically", "ironic", "ironically", "snarky"),
    "angry": (
        "angry",
        "angrily",
        "rude",
        "rudely",
        "harsh",
        "harshly",
        "blunt",
        "bluntly",
        "brutal",
        "brutally",
    ),
    "kind": (
        "kind",
        "kindly",
        "gentle",
        "gently",
        "empathetic",
        "compassionate",
        "encouraging",
        "supportive",
        "warm",
        "warmly",
    ),
    "persuasive": ("persuasive", "persuasively", "convincing", "convince", "persuade"),
    "neutral": ("neutral", "objective", "objectively", "unbiased", "balanced"),
    "enthusiastic": ("enthusiastic", "enthusiastically", "excited", "excitedly", "cheerful", "upbeat"),
    "pirate": ("pirate", "shakespeare", "shakespearean", "old english", "yoda"),
    "poetic": ("poetic", "poetically", "lyrical", "rhyme", "rhymes", "rhyming"),
}
_TONE_RE = _classes(_TONE)

_FORMATS = {
    "list": ("list", "listing", "enumerate", "numbered", "itemize", "itemise", "checklist"),
    "bullets": ("bullet", "bullets", "bullet points", "bullet-point", "bulleted"),
    "table": ("table", "tabular", "tabulate", "spreadsheet", "grid"),
    "json": ("json",),
    "yaml": ("yaml", "yml"),
    "xml": ("xml",),
    "csv": ("csv", "comma-separated"),
    "html": ("html",),
    "markdown": ("markdown",),
    "latex": ("latex",),
    "code": (
        "code",
        "snippet",
        "script",
        "write a function",
        "a function that",
        "write a program",
        "implementation",
        "implement",
        "pseudocode",
        "regex",
        "regular expression",
    ),
    "poem": (
        "poem",
        "poems",
        "haiku",
        "limerick",
        "sonnet",
        "verse",
        "verses",
        "stanza",
        "song",
        "lyrics",
        "rap",
    ),
    "story": ("story", "stories", "tale", "fable", "narrative", "fiction"),
    "letter": ("email", "e-mail", "letter", "memo", "note to"),
    "post": (
        "tweet",
        "blog post",
        "social media post",
        "blog",
        "headline",
        "slogan",
        "tagline",
        "caption",
        "ad copy",
        "advert",
    ),
    "essay": ("essay", "article", "report", "paper"),
    "outline": ("outline", "diagram", "flowchart", "mind map", "timeline"),
    "dialogue": ("dialogue", "dialog", "conversation", "script for", "interview"),
    "examples": ("example", "examples", "e.g.", "for instance", "sample", "samples", "illustrate"),
    "quiz": ("quiz", "questions and answers", "flashcards", "flashcard", "exercise", "exercises"),
    "steps": ("steps", "instructions", "recipe", "procedure", "checklist of steps"),
    "comparison": (
        "pros and cons",
        "advantages and disadvantages",
        "comparison",
        "compare",
        "versus",
        "vs",
        "vs.",
    ),
    "analogy": ("analogy", "analogies", "metaphor", "metaphors"),
    "formula": ("formula", "equation", "equations"),
    "sources": ("sources", "citations", "cite", "references", "bibliography"),
    "translation": ("translate", "translated", "translation", "translating"),
}
_FORMAT_RE = _classes(_FORMATS)

_AUDIENCE = {
    "child": (
        "child",
        "children",
        "kid",
        "kids",
        "toddler",
        "toddlers",
        "five-year-old",
        "5-year-old",
        "five year old",
        "like i'm five",
        "like i am five",
        "like im five",
        "eli5",
        "little one",
        "my son",
        "my daughter",
        "grade school",
        "elementary school",
        "preschooler",
    ),
    "teen": ("teen", "teens", "teenager", "teenagers", "high school", "high-school", "highschool"),
    "student": ("student", "students", "undergraduate", "undergraduates", "college", "university"),
    "beginner": (
        "beginner",
        "beginners",
        "novice",
        "novices",
        "newbie",
        "newbies",
        "layman",
        "laymen",
        "layperson",
        "lay person",
        "non-technical",
        "nontechnical",
        "non-expert",
        "non-experts",
        "someone new",
        "new to",
        "simple terms",
        "plain english",
        "plain language",
        "simply",
        "dummies",
        "no background",
    ),
    "expert": (
        "expert",
        "experts",
        "specialist",
        "specialists",
        "professional audience",
        "phd",
        "advanced",
        "graduate",
        "researcher",
        "researchers",
        "technical audience",
        "engineers",
        "engineer",
        "developer",
        "developers",
        "programmer",
        "programmers",
        "scientist",
        "scientists",
    ),
    "elderly": (
        "grandma",
        "grandmother",
        "grandpa",
        "grandfather",
        "grandparent",
        "grandparents",
        "elderly",
        "senior citizen",
        "seniors",
        "retiree",
    ),
    "manager": (
        "manager",
        "managers",
        "boss",
        "executive",
        "executives",
        "ceo",
        "stakeholder",
        "stakeholders",
        "investor",
        "investors",
    ),
    "customer": ("customer", "customers", "client", "clients"),
    "doctor": ("doctor", "doctors", "physician", "clinician", "nurse", "nurses", "patient", "patients"),
    "lawyer": ("lawyer", "lawyers", "attorney", "judge", "legal audience"),
    "teacher": ("teacher", "teachers", "classroom", "lesson"),
}
_AUDIENCE_RE = _classes(_AUDIENCE)

_EXTREMES = {
    "big": (
        "largest",
        "biggest",
        "greatest",
        "hugest",
        "larger",
        "bigger",
        "greater",
        "most massive",
        "heaviest",
        "heavier",
    ),
    "small": ("smallest", "tiniest", "smaller", "tinier", "least massive", "lightest", "lighter"),
    "high": ("highest", "tallest", "higher", "taller"),
    "low": ("lowest", "shortest", "lower", "shorter"),
    "long": ("longest", "longer"),
    "fast": ("fastest", "quickest", "faster", "quicker"),
    "slow": ("slowest", "slower"),
    "good": ("best", "better", "top", "finest", "greatest"),
    "bad": ("worst", "worse", "poorest"),
    "old": ("oldest", "older", "earliest", "earlier", "first", "ancient"),
    "new": (
        "newest",
        "newer",
        "youngest",
        "younger",
        "latest",
        "later",
        "last",
        "most recent",
        "recent",
        "modern",
    ),
    "hot": ("hottest", "hotter", "warmest", "warmer"),
    "cold": ("coldest", "colder", "coolest", "cooler"),
    "cheap": ("cheapest", "cheaper", "least expensive", "affordable", "budget"),
    "costly": ("most expensive", "more expensive", "priciest", "pricier", "costliest", "luxury"),
    "many": ("most", "more", "maximum", "max"),
    "few": ("least", "fewest", "fewer", "less", "minimum", "min"),
    "deep": ("deepest", "deeper"),
    "rich": ("richest", "richer", "wealthiest", "wealthier"),
    "populous": ("most populous", "most populated", "most people"),
    "easy": ("easiest", "easier", "simplest", "simpler"),
    "hard": ("hardest", "harder", "most difficult", "more difficult"),
    "safe": ("safest", "safer"),
    "dangerous": ("most dangerous", "more dangerous", "deadliest", "riskiest"),
    "up": ("increase", "increasing", "raise", "turn up", "boost", "speed up", "louder", "brighter"),
    "down": ("decrease", "decreasing", "reduce", "lower", "turn down", "slow down", "quieter", "dimmer"),
    "pro": ("pros", "advantages", "advantage", "benefits", "benefit", "upsides", "upside", "strengths"),
    "con": (
        "cons",
        "disadvantages",
        "disadvantage",
        "drawbacks",
        "drawback",
        "downsides",
        "downside",
        "risks",
        "weaknesses",
        "dangers",
    ),
}
_EXTREMES_RE = _classes(_EXTREMES)

_ASKS = {
    "when": (
        "when",
        "what year",
        "which year",
        "what date",
        "what time",
        "what century",
        "how long ago",
        "what day",
    ),
    "why": (
        "why",
        "how come",
        "for what reason",
        "what is the reason",
        "what's the reason",
        "reason why",
        "the reasons",
        "what makes",
        "what causes",
        "what caused",
    ),
}
_ASKS_RE = _classes(_ASKS)

_CLAUSES = {
    "if": (
        "if",
        "unless",
        "in case",
        "provided that",
        "providing",
        "assuming",
        "suppose",
        "supposing",
        "given that",
        "as long as",
        "only when",
        "whenever",
        "whether",
        "otherwise",
    ),
    "only": ("only", "solely", "exclusively", "strictly", "specifically"),
    "but": ("but", "however", "although", "though", "yet", "while", "whereas", "even though"),
    "also": (
        "also",
        "as well",
        "as well as",
        "in addition",
        "additionally",
        "plus",
        "too",
        "along with",
        "together with",
        "including",
        "include",
        "includes",
        "and also",
        "and then",
        "then",
        "afterwards",
        "after that",
        "followed by",
        "besides",
        "furthermore",
        "moreover",
        "mention",
        "and explain",
        "and describe",
        "and list",
        "and give",
        "and tell",
        "and show",
        "and why",
        "and how",
        "and when",
        "and where",
        "and what",
        "and who",
        "and which",
        "and its",
        "and their",
    ),
    "because": ("because", "since", "so that", "in order to", "due to"),
    "for": ("for a", "for an", "for my", "for our", "for someone", "for people"),
    "with": ("with a", "with an", "with my", "with some", "using", "by using", "via"),
    "during": (
        "during",
        "before",
        "after",
        "until",
        "at night",
        "in winter",
        "in summer",
        "today",
        "tomorrow",
        "yesterday",
        "now",
        "current",
        "currently",
        "nowadays",
        "in the past",
        "in the future",
    ),
    "where": (
        "in europe",
        "in asia",
        "in africa",
        "in america",
        "in the us",
        "in the uk",
        "at home",
        "at work",
        "on a budget",
        "outdoors",
        "indoors",
        "abroad",
        "in space",
        "underwater",
    ),
    "or": ("or", "either", "alternatively", "rather than", "instead"),
}
_CLAUSES_RE = _classes(_CLAUSES)

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_COURTESY = re.compile(
    r"^(?:please|pls|thanks|thank you|thx|hi|hello|hey|dear \w+|good (?:morning|afternoon|"
    r"evening)|quick question|question|help|help me|i have a question|can you help( me)?|"
    r"could you help( me)?|i need help|cheers)[\s,.!?]*$"
)
# Phrases that contain a listed word without it carrying its meaning.
_NEUTRAL = re.compile(
    r"\b(?:a lot|what is the best way to|what's the best way to|the best way to|best way to|"
    r"the right way to|do you know|can you tell me|could you tell me|would you tell me|"
    r"tell me|let me know|i want to know|i'd like to know|i would like to know|"
    r"i wonder|i was wondering|explain to me|make sure|in general|generally|in short|"
    r"at all|for me|to me|for you|with you|the first time|first name|last name|short for|stands? for|"
    r"asking for|ask for|requesting|request for|looking for|search for|searching for|"
    r"waiting for|apply for|applying for|pay for|for a while|for a living)\b"
)


# Phrasings that mean the same, written one way before the lists are read.
_SAME_AS = {
    "what happens when": "what happens if",
    "what will happen when": "what happens if",
    "without using": "without",
    "without the use of": "without",
}
_SAME = re.compile("|".join(map(re.escape, _SAME_AS)))


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return " ".join(text.split())


def _found(patterns: list[tuple[str, re.Pattern[str]]], text: str) -> frozenset[str]:
    return frozenset(name for name, pat in patterns if pat.search(text))


def signature(text: str) -> Signature:
    """The answer-changing signature of a prompt (pure; a few regular expressions).

    Two prompts whose signatures differ ask for different answers however close
    their embeddings; equal signatures leave the decision to the embedding.
    """
    t = _normal(text)
    numbers = list(_NUM.findall(t))
    numbers += [_NUMBER_WORDS[m.group(1)] for m in _COUNTED.finditer(t)]
    numbers += [_NUMBER_WORDS[m.group(1)] for m in _OLD.finditer(t)]
    t = _SAME.sub(lambda m: _SAME_AS[m.group(0)], t)
    bare = _NEUTRAL.sub(" ", _NOT_NEGATION.sub(" ", t))
    lengths = _found(_LENGTH_RE, bare)
    length = "" if len(lengths) != 1 else next(iter(lengths))
    if len(lengths) == 2:
        length = "mixed"
    clauses = tuple(sorted(name for name, pat in _CLAUSES_RE for _ in pat.finditer(bare)))
    sentences = [s for s in _SENTENCE_END.split(t) if s.strip(" .!?;") and not _COURTESY.match(s.strip())]
    return Signature(
        numbers=tuple(sorted(numbers)),
        negated=bool(_NEGATION.search(bare)),
        length=length,
        languages=_found(_LANGUAGE_RE, t),
        tone=_found(_TONE_RE, bare),
        formats=_found(_FORMAT_RE, bare),
        audience=_found(_AUDIENCE_RE, bare),
        extremes=_found(_EXTREMES_RE, bare),
        asks=_found(_ASKS_RE, bare),
        clauses=clauses,
        demands=max(1, len(sentences)),
    )
