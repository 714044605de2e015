"""Template markers: answers are cut at their end-of-turn tokens and role
headers (sovereign/router/markers.py, tiers.py), and an answer that only
repeats the prompt scores 0 (`echo`, scoring.py). The last tests ask the real
tiers (SmolLM2 chat, Gemma 3 270M base) the lab's questions."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from router_helpers import FIXTURES, LLAMA_KEY
from testbed import LlamaServer

from sovereign.router.config import ScoringSettings, TierSettings
from sovereign.router.markers import ALL, FAMILIES, markers_for
from sovereign.router.scoring import echo_of, logprob_score, score_answer
from sovereign.router.tiers import TierAnswer, TierClient, TokenLP

S = ScoringSettings()
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
GEMMA = ("{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\\n' + "
         "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
         "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}")
LLAMA3 = ("{{- bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
          "{% endif %}")
PROPS = {
    "chatml": {"chat_template": CHATML, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
    "gemma": {"chat_template": GEMMA, "bos_token": "<bos>", "eos_token": "<eos>"},
    "llama3": {"chat_template": LLAMA3, "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
}
QUESTIONS = ["What is the capital of France?", "What is 2 + 2?",
             "Should I move my savings into a high-yield account?"]


def _msgs(q: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}]


# --------------------------------------------------------------------------- cutting


@pytest.mark.parametrize(("family", "text", "want", "marker"), [
    # the lab's answer: the question, then the model's own next turns
    ("chatml", "What is the capital of France?<|im_end|>\n<|im_start|>admin\nNo.",
     "What is the capital of France?", "<|im_end|>"),
    ("chatml", "Paris.<|im_end|>", "Paris.", "<|im_end|>"),
    ("chatml", "<|im_start|>assistant\nParis.<|im_end|>\n<|im_start|>user\nAnd Italy?", "Paris.",
     "<|im_end|>"),
    ("chatml", "Paris.\n<|im_start|>user\nAnd Italy?", "Paris.", "<|im_start|>"),
    ("gemma", "Paris.<end_of_turn>\n<start_of_turn>user\nAnd Italy?", "Paris.", "<end_of_turn>"),
    ("gemma", "<start_of_turn>model\nParis.<end_of_turn>", "Paris.", "<end_of_turn>"),
    ("gemma", "<bos>Paris.<eos>", "Paris.", "<eos>"),
    ("llama3", "Paris.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd Italy?", "Paris.",
     "<|eot_id|>"),
    ("llama3", "<|begin_of_text|><|start_header_id|>assistant<|end_header_id|>\n\nParis.<|eot_id|>", "Paris.",
     "<|eot_id|>"),
])
def test_each_family_is_cut_at_its_end_of_turn_and_role_headers(family: str, text: str, want: str,
                                                                 marker: str) -> None:
    cut = markers_for(PROPS[family]).cut(text)
    assert (cut.text, cut.marker) == (want, marker)


@pytest.mark.parametrize(("family", "text"), [
    ("chatml", "Paris. <|im_ end|>\n<|im_start|>user"),
    ("chatml", "Paris. < |im_end| >"),
    ("chatml", "Paris.<|im_end\n|>"),
    ("gemma", "Paris.<end_of_ turn>"),
    ("llama3", "Paris.<| eot_id |>"),
])
def test_a_marker_split_across_whitespace_is_still_a_marker(family: str, text: str) -> None:
    assert markers_for(PROPS[family]).cut(text).text == "Paris."


@pytest.mark.parametrize("text", [
    "Paris.", "  The capital of France is Paris.\n\nIt is on the Seine.  ", "4",
    "a < b and b > c, so |a| < |c|.",
    "Use <b>bold</b> or <em>emphasis</em>.", "The end of the turn.", "",
])
@pytest.mark.parametrize("family", [*PROPS, None])
def test_text_without_markers_is_untouched(family: str | None, text: str) -> None:
    marks = markers_for(PROPS[family] if family else None)
    cut = marks.cut(text)
    assert (cut.text, cut.marker) == (text, None)


def test_a_marker_cut_short_at_the_end_is_removed() -> None:
    assert markers_for(PROPS["chatml"]).cut("Paris.<|im_").text == "Paris."
    assert markers_for(PROPS["gemma"]).cut("Paris. <end_of").text == "Paris."


def test_the_markers_come_from_props_else_from_the_template_else_every_family() -> None:
    chatml = markers_for(PROPS["chatml"])
    assert chatml.source == "props"
    assert {"<|im_end|>", "<|im_start|>"} <= set(chatml.special)
    assert "<end_of_turn>" not in chatml.special  # the model declared ChatML: no other family
    gemma = markers_for(PROPS["gemma"])
    assert {"<end_of_turn>", "<start_of_turn>", "<eos>", "<bos>"} <= set(gemma.special)
    # no /props: a ChatML prompt template names the family
    tmpl = markers_for(None, "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n", completion=True)
    assert tmpl.source == "template" and "<|im_end|>" in tmpl.special and "<eos>" not in tmpl.special
    # neither: every family's markers
    none = markers_for(None)
    assert none.source == "fallback"
    for fam in FAMILIES:
        assert set(fam.end) <= set(none.special)


def test_a_plain_text_template_stops_at_its_labels_at_a_line_start() -> None:
    marks = markers_for({"chat_template": CHATML, "eos_token": "<eos>", "bos_token": "<bos>"},
                        "Question: {prompt}\nAnswer:", completion=True)
    assert marks.labels == ["Question:", "Answer:", "User:", "Assistant:"]
    stop = marks.stop()
    assert {"\nQuestion:", "\nAnswer:", "\nUser:", "<eos>", "<|im_end|>"} <= set(stop)
    assert marks.cut(" Paris.\nQuestion: What is the capital of Italy?").text == "Paris."
    assert marks.cut("Answer: Paris.").text == "Paris."  # the template's last label, repeated
    assert marks.cut("The question: is it Paris? Answer: yes.").marker is None  # not at a line start


# --------------------------------------------------------------------------- tier clients


def _chat_data(content: str, pieces: list[str], finish: str = "stop") -> dict[str, Any]:
    items = [{"token": p, "logprob": -0.1, "top_logprobs": []} for p in pieces]
    return {"model": "m", "choices": [{"message": {"content": content}, "finish_reason": finish,
                                       "logprobs": {"content": items}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": len(pieces)}}


def test_a_chat_answer_is_cut_with_its_tokens() -> None:
    pieces = ["Paris", ".", "<", "|", "im", "_end", "|>", "\n", "<|im_start|>", "user"]
    client = TierClient(TierSettings(name="t", kind="local", endpoint="http://x"), http=None)  # type: ignore[arg-type]
    ans = client._from_chat(_chat_data("".join(pieces), pieces, "length"), 0.0, markers_for(PROPS["chatml"]))
    assert ans.text == "Paris." and ans.cut == "<|im_end|>"
    assert [t.token for t in ans.tokens] == ["Paris", "."]
    assert ans.finish_reason == "stop"  # it ended at its end-of-turn, not at max_tokens


def test_a_completion_answer_is_cut_with_its_tokens() -> None:
    data = json.loads((FIXTURES / "gemma_completion_probs.json").read_text())
    tier = TierSettings(name="t", kind="local", endpoint="http://x", api="completion")
    client = TierClient(tier, http=None)  # type: ignore[arg-type]
    marks = markers_for(None, tier.prompt_template, completion=True)
    clean = client._from_completion(data, 0.0, marks)
    assert clean.cut is None and clean.text == str(data["content"]).strip()
    probs = data["completion_probabilities"]
    extra = [{"token": t, "logprob": -3.0, "top_logprobs": []} for t in ["\n", "Question", ":", " Why"]]
    dirty = client._from_completion({**data, "content": data["content"] + "\nQuestion: Why",
                                     "completion_probabilities": probs + extra}, 0.0, marks)
    assert dirty.text == clean.text == "Paris" and dirty.cut == "Question:"
    assert [t.token for t in dirty.tokens] == [t.token for t in clean.tokens] == [" Paris"]


def test_props_are_read_once_per_tier_and_sent_as_stop_strings() -> None:
    seen: list[tuple[str, dict[str, Any] | None]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content) if req.content else None
        seen.append((req.url.path, body))
        if req.url.path == "/props":
            return httpx.Response(200, json=PROPS["gemma"])
        return httpx.Response(200, json={"content": " Paris.<end_of_turn>\n<start_of_turn>user",
                                         "stop_type": "limit", "completion_probabilities": [],
                                         "tokens_predicted": 9})

    async def go() -> list[TierAnswer]:
        tier = TierSettings(name="g", kind="local", endpoint="http://g", api="completion")
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = TierClient(tier, http)
            return [await client.complete(_msgs("What is the capital of France?")) for _ in range(3)]

    answers = asyncio.run(go())
    assert [a.text for a in answers] == ["Paris."] * 3
    assert [p for p, _ in seen].count("/props") == 1
    stops = [b["stop"] for p, b in seen if p == "/completion" and b]
    assert len(stops) == 3
    for stop in stops:
        assert {"\n\n", "\nQuestion:", "<end_of_turn>", "<start_of_turn>", "<eos>"} <= set(stop)


def test_a_tier_without_props_uses_its_template_and_asks_again_later() -> None:
    calls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.url.path)
        if req.url.path == "/props":
            return httpx.Response(404, text="not found")
        return httpx.Response(200, json={"model": "m", "choices": [
            {"message": {"content": "Paris.<|eot_id|>"}, "finish_reason": "stop"}]})

    async def go() -> TierAnswer:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = TierClient(TierSettings(name="c", kind="local", endpoint="http://c"), http)
            ans = await client.complete(_msgs("What is the capital of France?"))
            await client.complete(_msgs("What is the capital of France?"))
            assert calls.count("/props") == 1  # not again within PROPS_RETRY_S
            client._markers_until = 0.0
            await client.complete(_msgs("What is the capital of France?"))
            assert calls.count("/props") == 2
            return ans

    ans = asyncio.run(go())
    assert ans.text == "Paris." and ans.cut == "<|eot_id|>"


# --------------------------------------------------------------------------- echo


@pytest.mark.parametrize("answer", [
    "What is the capital of France?",
    "what is the capital of france",
    "  What   is the capital\nof France ?!",
    "WHAT IS THE CAPITAL OF FRANCE?",
    "What is the capital of France?<|im_end|>\n<|im_start|>admin\n",
    "What is the capital of France? What is the capital of France?",
    "Question: What is the capital of France?\nAnswer:",
    "What is the capital of",  # the echo cut short by max_tokens
])
def test_an_echo_of_the_question_is_recognised(answer: str) -> None:
    assert echo_of(_msgs("What is the capital of France?"), answer) == "user"


@pytest.mark.parametrize(("question", "answer"), [
    ("What is the capital of France?", "Paris."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of France?", "France"),
    ("What is the capital of France?", "What"),
    ("What is 2 + 2?", "4"),
    ("What is 2 + 2?", "2 + 2 = 4"),
    ("What is 2 + 2?", "What is 2 + 2? It is 4."),
    ("Should I move my savings into a high-yield account?",
     "Yes, if the rate is higher and the account is insured."),
    ("?", "?"),
    ("Hello", "Hello!"),
])
def test_a_real_answer_is_not_an_echo(question: str, answer: str) -> None:
    assert echo_of(_msgs(question), answer) is None


def _answer(text: str, logprob: float = -0.01) -> TierAnswer:
    toks = [TokenLP(token=w, logprob=logprob) for w in re.findall(r"\S+|\s+", text)]
    return TierAnswer(tier="t", model="m", text=text, finish_reason="stop", tokens=toks)


@pytest.mark.parametrize("kind", ["logprob", "accept", "verify", "logprob+verify"])
def test_an_echo_scores_zero_with_reason_echo(kind: str) -> None:
    q = "What is the capital of France?"
    score = asyncio.run(score_answer(kind, _msgs(q), _answer(q), None, S))
    assert score.raw == 0.0 and score.reason == "echo" and score.value == 0.0
    assert "echo" in score.note
    score.calibrated = 0.3  # a calibration maps raw 0 above 0: an echo stays at 0
    assert score.value == 0.0


def test_a_confident_echo_cannot_outrank_a_less_confident_answer() -> None:
    q = "What is the capital of France?"
    echo = asyncio.run(score_answer("logprob", _msgs(q), _answer(q, -0.001), None, S))
    real = asyncio.run(score_answer("logprob", _msgs(q), _answer("Paris.", -1.0), None, S))
    assert real.reason == "" and real.value > 0
    assert echo.value < real.value


# --------------------------------------------------------------------------- the real tiers


def _marker_in(text: str) -> str | None:
    cut = ALL.cut(text)
    if cut.marker is not None:
        return cut.marker
    pieces = ("<|", "|>", "<start_of_turn", "<end_of_turn", "<eos>", "<bos>", "</s>")
    return next((m for m in pieces if m in text), None)


def _check(tier: str, q: str, ans: TierAnswer) -> None:
    assert _marker_in(ans.text) is None, f"{tier}: {q!r} -> {ans.text!r}"
    # the tokens kept are those of the text: every one begins inside it (the last may
    # straddle the cut: `?<` before `|im_end|>`); llama-server leaves out the token a
    # stop string begins in, so there may be fewer
    toks = [t.token for t in ans.tokens if t.token]  # not the EOS (empty text)
    if toks:
        text, before_last = ans.text.lstrip(), "".join(toks[:-1]).lstrip()
        assert text.startswith(before_last), (tier, q, toks)
        assert len(before_last) < len(text) or not toks[-1].strip(), (tier, q, toks)


@pytest.fixture
def real_tiers(smol_server: LlamaServer, gemma_server: LlamaServer) -> list[TierSettings]:
    return [
        TierSettings(name="system-1", kind="local", model="smollm2-135m", endpoint=smol_server.url,
                     timeout_s=60, max_tokens=48),
        TierSettings(name="system-2", kind="local", model="gemma-3-270m", endpoint=gemma_server.url,
                     api="completion", timeout_s=60, max_tokens=48),
        # what the lab ran: the base model through llama-server's chat template
        TierSettings(name="system-2-chat", kind="local", model="gemma-3-270m", endpoint=gemma_server.url,
                     timeout_s=60, max_tokens=48),
    ]


def test_the_real_tiers_answer_without_markers_and_an_echo_scores_zero(
        real_tiers: list[TierSettings]) -> None:
    from pydantic import SecretStr

    key = SecretStr(LLAMA_KEY)
    headers = {"Authorization": f"Bearer {LLAMA_KEY}"}

    async def go() -> tuple[list[tuple[str, str, TierAnswer, Any]], dict[str, Any], TierAnswer, Any]:
        out, props = [], {}
        async with httpx.AsyncClient() as http:
            clients = {t.name: TierClient(t, http, api_key=key) for t in real_tiers}
            for name, client in clients.items():
                for q in QUESTIONS:
                    ans = await client.complete(_msgs(q))
                    out.append((name, q, ans, await score_answer("logprob", _msgs(q), ans, None, S)))
                props[name] = client.props
            # the lab's request exactly (no stop strings): the markers come back in the
            # content and are cut after generation; what is left echoes the question
            lab = clients["system-2-chat"]
            q = QUESTIONS[0]
            body = {"messages": _msgs(q), "max_tokens": 48, "temperature": 0.0, "logprobs": True,
                    "top_logprobs": 5}
            resp = await http.post(f"{lab.tier.endpoint}/v1/chat/completions", headers=headers, json=body)
            raw = resp.json()
            echo = lab._from_chat(raw, 0.0, await lab.markers())
            echo_score = await score_answer("logprob", _msgs(q), echo, None, S)
        return out, props, echo, (raw, echo_score)

    results, props, echo, (raw, echo_score) = asyncio.run(go())
    print(json.dumps([{"tier": t, "question": q, "text": a.text, "cut": a.cut, "finish": a.finish_reason,
                       "score": s.value, "reason": s.reason} for t, q, a, s in results], indent=1))  # -rP
    for name, p in props.items():
        assert p is not None and p.get("chat_template"), f"{name}: /props was not read"
    for t, q, a, s in results:
        _check(t, q, a)
        if s.reason == "echo":
            assert s.value == 0.0
        else:
            assert echo_of(_msgs(q), a.text) is None
    for tier in real_tiers:
        assert any(a.text.strip() for t, _, a, _ in results if t == tier.name), f"{tier.name} never answered"

    raw_text = raw["choices"][0]["message"]["content"]
    assert _marker_in(raw_text) == "<|im_end|>", raw_text  # the lab's symptom, reproduced
    _check("system-2-chat", QUESTIONS[0], echo)
    assert echo.text == QUESTIONS[0] and echo.cut == "<|im_end|>"
    assert (echo_score.reason, echo_score.value, echo_score.raw) == ("echo", 0.0, 0.0)
    # the tier's own log-probabilities would have ranked it above a real answer
    assert logprob_score(echo, S).raw > 0
