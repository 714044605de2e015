"""Chat-template markers: where a local tier's answer ends.

A small model does not always stop at its end-of-turn token: it writes the
token out as text, or goes on with a turn of its own (`Paris.<|im_end|>
<|im_start|>user ...`), and a base model prompted through a chat template it
was never trained on does so most of the time. No answer leaves the router
with such a marker in it: a tier's text is cut at the first end-of-turn token
or role header.

Where the markers come from, for each tier, once (tiers.py caches them):

- what the model declares: llama-server's `GET /props` gives the
  `chat_template` it applies to `/v1/chat/completions` (the model's own, or
  llama-server's ChatML fallback for a model without one: Gemma 3 270M, a base
  model, asked through it, repeats the question and writes `<|im_end|>` out as
  text), and the model's `bos_token` and `eos_token`. Every special token the template writes
  (`<|...|>`), the markers of its family, and the BOS/EOS texts are markers;
- the tier's `prompt_template`: the markers of the family it is written in
  (ChatML, Gemma, Llama 3, ...) and, for a base model on `/completion` with a
  plain-text template such as `Question: {prompt}\\nAnswer:`, its role labels
  at the start of a line (`\\nQuestion:`, `\\nAnswer:`, and the `User:` /
  `Assistant:` of the transcript `render_prompt` writes for a conversation);
- neither (no `/props`, no family in either template): the markers of every
  known family.

They are sent to llama-server as `stop` strings (a `/completion` tier's
together with its `stop`; a chat tier's special tokens) and the text is cut
again after generation: a marker written with whitespace inside it passes a
stop string by, and a `/props` that could not be read leaves only the template.

A special token is recognised with whitespace inside it (`<|im_ end|>`, a
token the model spelled out in pieces); a role label only at the start of a
line, exactly. A header that opens the assistant's own turn at the very start
of the text (`<|im_start|>assistant\\n`) is dropped rather than cut at, and a
trailing piece of a marker (`Paris.<|im_`, generation stopped mid-token) is
removed. Text without markers is returned unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Family:
    name: str
    detect: tuple[str, ...]   # any of these in a template names the family
    end: tuple[str, ...]      # end-of-turn / end-of-text tokens
    open: tuple[str, ...]     # tokens that open a turn or a role header
    bos: tuple[str, ...] = ()  # beginning-of-text tokens (dropped at the start of an answer)


FAMILIES: tuple[Family, ...] = (
    Family("chatml", ("<|im_start|>", "<|im_end|>"), ("<|im_end|>", "<|endoftext|>"), ("<|im_start|>",)),
    Family("gemma", ("<start_of_turn>", "<end_of_turn>"), ("<end_of_turn>", "<eos>"),
           ("<start_of_turn>",), ("<bos>",)),
    Family("llama3", ("<|start_header_id|>", "<|eot_id|>"), ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
           ("<|start_header_id|>", "<|end_header_id|>"), ("<|begin_of_text|>",)),
    Family("phi3", ("<|user|>", "<|assistant|>", "<|end|>"), ("<|end|>", "<|endoftext|>"),
           ("<|user|>", "<|assistant|>", "<|system|>")),
    Family("llama2", ("[INST]", "[/INST]"), ("</s>",), ("[INST]", "[/INST]"), ("<s>",)),
)
OPENERS = frozenset(tok for f in FAMILIES for tok in f.open)
BOS = frozenset(tok for f in FAMILIES for tok in f.bos)
# Role names that open the assistant's own turn: such a header at the very
# start of the text is dropped, any other (a user turn) ends the answer.
ASSISTANT_ROLES = ("assistant", "model", "bot", "gpt")
# Special tokens as templates write them: <|im_end|>, <|eot_id|>, <start_of_turn>.
_SPECIAL_IN_TEMPLATE = re.compile(r"<\|[A-Za-z0-9_.\-]{1,40}\|>|<(?:start|end)_of_turn>")
# Labels of a plain-text template: a capitalised word or two, then a colon, at a line start.
_LABEL_IN_TEMPLATE = re.compile(r"(?m)^[ \t]*([A-Z][A-Za-z]{0,20}(?: [A-Z][A-Za-z]{0,20})?):")
TRANSCRIPT_LABELS = ("User:", "Assistant:")  # render_prompt's multi-turn transcript


def families_in(template: str | None) -> list[Family]:
    return [f for f in FAMILIES if template and any(d in template for d in f.detect)]


def _special_ok(tok: Any) -> bool:
    return isinstance(tok, str) and 3 <= len(tok) <= 40 and not any(c.isspace() for c in tok)


def _pattern(tok: str) -> str:
    """A special token, tolerant of whitespace between its characters."""
    return r"\s*".join(re.escape(c) for c in tok)


@dataclass(frozen=True)
class Cut:
    text: str
    start: int              # offsets of `text` in the text that was cut
    end: int
    marker: str | None      # the marker the text was cut at (None: nothing cut)


@dataclass
class Markers:
    """The markers of one tier: special tokens (cut anywhere) and role labels (cut at a line start)."""

    special: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    source: str = ""         # where they came from: props, template, fallback (joined with +)
    bos: list[str] = field(default_factory=list)  # also special; only dropped at the very start

    def __post_init__(self) -> None:
        self.special = list(dict.fromkeys(self.special))
        self.labels = list(dict.fromkeys(self.labels))
        self.bos = [t for t in dict.fromkeys(self.bos) if t in self.special and t not in OPENERS]
        alts = [_pattern(t) for t in sorted(self.special, key=len, reverse=True)]
        alts += [r"(?:(?<=\n)|^)[ \t]*" + re.escape(lb) for lb in sorted(self.labels, key=len, reverse=True)]
        self._any = re.compile("|".join(alts)) if alts else None
        heads = [_pattern(t) for t in self.bos]
        openers = [_pattern(t) for t in self.special if t in OPENERS]
        if openers:
            heads.append(r"(?:" + "|".join(openers) + r")\s*(?:" + "|".join(ASSISTANT_ROLES) + r")\b[ \t]*"
                         r"(?:" + _pattern("<|end_header_id|>") + r")?[ \t]*\n?")
        self._header = re.compile(r"\s*(?:" + "|".join(heads) + r")", re.I) if heads else None
        last = [lb for lb in self.labels if lb not in TRANSCRIPT_LABELS]
        self._lead_label = re.compile(r"\s*" + re.escape(last[-1]) + r"[ \t]*") if last else None

    def stop(self) -> list[str]:
        """Stop strings for llama-server: the special tokens and, at a line start, the labels."""
        return [*self.special, *("\n" + lb for lb in self.labels)]

    def cut(self, text: str) -> Cut:
        start = 0
        if self._header is not None:
            while (m := self._header.match(text, start)) and m.end() > start:
                start = m.end()
        if self._lead_label is not None and (m := self._lead_label.match(text, start)):
            start = m.end()
        end, marker = len(text), None
        if self._any is not None and (m := self._any.search(text, start)):
            end, marker = m.start(), re.sub(r"\s+", "", m.group()) or m.group()
        body = text[start:end]
        if marker is None:
            tail = _partial_tail(body, self.special)
            if tail:
                body, marker = body[:-len(tail)], tail
        if marker is None and start == 0:
            return Cut(text=text, start=0, end=len(text), marker=None)
        stripped = body.rstrip()
        lead = len(stripped) - len(stripped.lstrip())
        return Cut(text=stripped[lead:], start=start + lead, end=start + len(stripped),
                   marker=marker or "header")


def _partial_tail(text: str, special: list[str]) -> str:
    """The end of `text` when it is the beginning of a special token (`<|im_`), else ''."""
    best = ""
    for tok in special:
        for n in range(min(len(tok) - 1, len(text)), 1, -1):
            if text.endswith(tok[:n]):
                if n > len(best):
                    best = tok[:n]
                break
    return best


def markers_for(props: dict[str, Any] | None, prompt_template: str | None = None, *,
                completion: bool = False) -> Markers:
    """The markers of a tier from its `/props` (or None) and its prompt template:
    the template's special tokens for any tier, its role labels (and the
    transcript's) only for a `/completion` tier, the one that is prompted with it."""
    special: list[str] = []
    labels: list[str] = []
    bos: list[str] = []
    sources: list[str] = []
    identified = False  # a template family was recognised
    if props:
        tmpl = props.get("chat_template")
        tmpl = tmpl if isinstance(tmpl, str) else ""
        found = _SPECIAL_IN_TEMPLATE.findall(tmpl)
        for fam in families_in(tmpl):
            found += [*fam.end, *fam.open, *fam.bos]
            identified = True
        found += [props.get("eos_token"), props.get("bos_token")]
        found = [t for t in found if _special_ok(t)]
        if _special_ok(props.get("bos_token")):
            bos.append(props["bos_token"])
        if found:
            special += found
            sources.append("props")
    if prompt_template:
        fams = families_in(prompt_template)
        found = _SPECIAL_IN_TEMPLATE.findall(prompt_template)
        for fam in fams:
            found += [*fam.end, *fam.open, *fam.bos]
            identified = True
        special += found
        if completion and not fams:
            labels += [m.group(1) + ":" for m in _LABEL_IN_TEMPLATE.finditer(prompt_template)]
        if completion:
            labels += list(TRANSCRIPT_LABELS)
        if found or completion:
            sources.append("template")
    if not identified:
        special += [t for fam in FAMILIES for t in (*fam.end, *fam.open, *fam.bos)]
        sources.append("fallback")
    bos += [t for t in BOS if t in special]
    return Markers(special=special, labels=labels, source="+".join(sources), bos=bos)


ALL = markers_for(None)  # every known family's special tokens


def cut_any(text: str) -> str:
    """`text` cut at the first special token of any known family."""
    return ALL.cut(text).text
