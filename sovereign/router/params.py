"""The request parameters the ladder honours or refuses: `stop`,
`response_format`, `tools` / `tool_choice`, and the parsing of the body itself.

Nothing a client asks for is dropped. Each parameter is checked here (a
malformed one is `BadParam`, HTTP 400 naming it), carried to the tiers that
can honour it (ladder.py decides which, tiers.py sends it), and the answer is
checked against it before it is accepted:

- `stop`: up to 4 strings; sent to every tier (merged with a local tier's own
  stop strings) and applied to the text after generation, a crystal's answer
  included (`cut_at_stop`);
- `response_format`: `text`, `json_object` or `json_schema`; an answer must
  parse as JSON, and for `json_schema` be valid against the schema
  (`check_format`, with the small validator `schema_errors`);
- `tools`: OpenAI's function tools; `tool_choice` `none`, `auto`,
  `required` or a named function;
- `sovereign`: the router's own fields, which OpenAI clients send with
  `extra_body={"sovereign": {...}}`: `retrieve` (true: add context from the
  RAG store for the local tiers; false: never, even on a tier configured to;
  retrieval.py). An unknown key is refused.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

MAX_STOP = 4
MAX_DEPTH = 64  # nesting of a request body; OpenAI's own bodies need a handful
MAX_TOOLS = 128
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class BadParam(ValueError):
    """A parameter the router refuses: HTTP 400 naming it."""

    def __init__(self, param: str | None, message: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.code = code


# --------------------------------------------------------------------------- the body


def parse_body(raw: bytes) -> Any:
    """The JSON of a request body; malformed input (not UTF-8, not JSON, nested
    deeper than MAX_DEPTH, a lone UTF-16 surrogate in a string) is `BadParam`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadParam(None, f"the request body is not valid UTF-8: {exc}", "invalid_json") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise BadParam(None, f"the request body is nested deeper than {MAX_DEPTH} levels",
                       "invalid_json") from None
    except ValueError as exc:
        raise BadParam(None, f"the request body is not valid JSON: {exc}", "invalid_json") from None
    _check_tree(data)
    return data


def _check_tree(data: Any) -> None:
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise BadParam(None, f"the request body is nested deeper than {MAX_DEPTH} levels", "invalid_json")
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise BadParam(where or None, f"{where or 'the body'}: a string holds a lone UTF-16 "
                               "surrogate (not a Unicode character)", "invalid_json")
        elif isinstance(value, dict):
            for k, v in value.items():
                key = f"{where}.{k}" if where else str(k)
                if _SURROGATE.search(k):
                    raise BadParam(where or None, f"{where or 'the body'}: a key holds a lone UTF-16 "
                                   "surrogate (not a Unicode character)", "invalid_json")
                stack.append((v, depth + 1, key))
        elif isinstance(value, list):
            stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(value))


# --------------------------------------------------------------------------- the parameters


@dataclass
class Params:
    """What a request asks of its answer, beyond the text."""

    stop: list[str] = field(default_factory=list)
    response_format: dict[str, Any] | None = None  # json_object / json_schema only; text is None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    tool_turns: bool = False  # the conversation holds tool calls or tool results
    retrieve: bool | None = None  # sovereign.retrieve; None: as the tiers are configured

    @property
    def json_mode(self) -> str | None:
        return None if self.response_format is None else str(self.response_format["type"])

    @property
    def schema(self) -> dict[str, Any] | None:
        if self.json_mode != "json_schema":
            return None
        assert self.response_format is not None
        return dict(self.response_format["json_schema"].get("schema") or {})

    @property
    def needs_tools(self) -> bool:
        return bool(self.tools) or self.tool_turns

    def forced_tool(self) -> bool:
        return self.tool_choice == "required" or isinstance(self.tool_choice, dict)


def read_params(data: dict[str, Any], messages: list[dict[str, Any]]) -> Params:
    """The parameters of a request body, checked (BadParam names the first wrong one)."""
    p = Params(stop=_stop(data.get("stop")), response_format=_response_format(data.get("response_format")))
    tools, choice = data.get("tools"), data.get("tool_choice")
    if tools is not None:
        p.tools = _tools(tools)
        p.tool_choice = _tool_choice(choice, p.tools)
        if p.tool_choice == "none":  # no call may be made: the tools are not needed
            p.tools, p.tool_choice = None, None
    elif choice is not None and choice != "none":
        raise BadParam("tool_choice", "tool_choice: given without tools")
    p.tool_turns = any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)
    p.retrieve = _sovereign(data.get("sovereign")).get("retrieve")
    return p


SOVEREIGN_FIELDS = {"retrieve": bool}


def _sovereign(value: Any) -> dict[str, Any]:
    """The request's `sovereign` object: only the fields the router knows, each of its type."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadParam("sovereign", "sovereign: an object (the router's own fields: "
                       f"{', '.join(SOVEREIGN_FIELDS)})")
    for key, v in value.items():
        kind = SOVEREIGN_FIELDS.get(key)
        if kind is None:
            raise BadParam(f"sovereign.{key}", f"sovereign.{key}: not a field of the router (known: "
                           f"{', '.join(SOVEREIGN_FIELDS)})")
        if not isinstance(v, kind):
            raise BadParam(f"sovereign.{key}", f"sovereign.{key}: expected {kind.__name__}, got "
                           f"{type(v).__name__}")
    return value


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise BadParam("stop", "stop: a string or an array of strings")
    if len(stops) > MAX_STOP:
        raise BadParam("stop", f"stop: at most {MAX_STOP} sequences (got {len(stops)})")
    if any(s == "" for s in stops):
        raise BadParam("stop", "stop: an empty string cannot be a stop sequence")
    return list(dict.fromkeys(stops))


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise BadParam("response_format", "response_format: an object with a `type`")
    kind = value["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        js = value.get("json_schema")
        if not isinstance(js, dict) or not isinstance(js.get("name"), str):
            raise BadParam("response_format", "response_format.json_schema: an object with a `name` "
                           "and a `schema`")
        schema = js.get("schema", {})
        if not isinstance(schema, dict):
            raise BadParam("response_format", "response_format.json_schema.schema: a JSON Schema object")
        return {"type": "json_schema", "json_schema": {**js, "schema": schema}}
    raise BadParam("response_format", f"response_format.type: {kind!r} is not one of text, json_object, "
                   "json_schema")


def _tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadParam("tools", "tools: a non-empty array of function tools")
    if len(value) > MAX_TOOLS:
        raise BadParam("tools", f"tools: at most {MAX_TOOLS} tools (got {len(value)})")
    for i, t in enumerate(value):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            raise BadParam("tools", f"tools[{i}]: only {{\"type\": \"function\", \"function\": {{…}}}} "
                           "tools are supported")
        if not isinstance(fn.get("name"), str) or not _FUNCTION_NAME.match(fn["name"]):
            raise BadParam("tools", f"tools[{i}].function.name: 1-64 letters, digits, _ or -")
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            raise BadParam("tools", f"tools[{i}].function.parameters: a JSON Schema object")
    return value


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> Any:
    if value is None:
        return "auto"
    if value in ("none", "auto", "required"):
        return value
    names = [t["function"]["name"] for t in tools]
    if (isinstance(value, dict) and value.get("type") == "function"
            and isinstance(value.get("function"), dict)):
        name = value["function"].get("name")
        if name in names:
            return {"type": "function", "function": {"name": name}}
        raise BadParam("tool_choice", f"tool_choice.function.name: {name!r} is not one of the tools "
                       f"({', '.join(names)})")
    raise BadParam("tool_choice", "tool_choice: none, auto, required or "
                   "{\"type\": \"function\", \"function\": {\"name\": …}}")


# --------------------------------------------------------------------------- answers


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """The text up to the first stop string (and that string), or the text as it is."""
    best: tuple[int, str] | None = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    return (text, None) if best is None else (text[:best[0]], best[1])


def check_format(text: str, params: Params) -> str | None:
    """Why an answer does not satisfy the request's response_format, or None."""
    if params.json_mode is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if params.json_mode == "json_object" and not isinstance(value, dict):
        return f"JSON, but a {type(value).__name__}, not an object"
    schema = params.schema
    if schema is not None and (errors := schema_errors(value, schema)):
        return "not valid against the schema: " + "; ".join(errors[:3])
    return None


def check_tool_calls(calls: list[dict[str, Any]] | None, params: Params) -> str | None:
    """Why an answer's tool calls do not honour `tools` / `tool_choice`, or None."""
    names = [t["function"]["name"] for t in params.tools or []]
    if not calls:
        if params.forced_tool():
            return "tool_choice requires a tool call and the answer has none"
        return None
    for c in calls:
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or fn.get("name") not in names:
            return f"a tool call names no offered tool ({fn.get('name') if isinstance(fn, dict) else c!r})"
        try:
            json.loads(fn.get("arguments") or "{}")
        except (TypeError, ValueError):
            return f"the arguments of the call to {fn['name']} are not JSON"
    if isinstance(params.tool_choice, dict):
        want = params.tool_choice["function"]["name"]
        if any(c["function"]["name"] != want for c in calls):
            return f"tool_choice names {want} and the answer calls another tool"
    return None


_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    want = _TYPES.get(kind)
    return (want is not None and isinstance(value, want)
            and not (kind != "boolean" and isinstance(value, bool)))


def schema_errors(value: Any, schema: Any, where: str = "$") -> list[str]:
    """The ways a value breaks a JSON Schema: type, enum, const, properties,
    required, additionalProperties, items, min/maxItems, min/maxLength,
    minimum/maximum, anyOf/oneOf/allOf, and local `$ref`s (#/$defs/…). Other
    keywords are not checked."""
    return _errors(value, schema, where, schema)


def _errors(value: Any, schema: Any, where: str, root: dict[str, Any]) -> list[str]:
    if schema is True or not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        ref = str(schema["$ref"])
        target: Any = root
        if ref.startswith("#"):
            for part in [p for p in ref[1:].split("/") if p]:
                target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return [f"{where}: unresolved {ref}"]
        return _errors(value, target, where, root)
    out: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is(value, k) for k in kinds):
            return [f"{where}: expected {'/'.join(kinds)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}: {value!r} is not {schema['const']!r}")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                out.append(f"{where}: {name!r} is required")
        for k, v in value.items():
            if k in props:
                out.extend(_errors(v, props[k], f"{where}.{k}", root))
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}: {k!r} is not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                out.extend(_errors(v, schema["additionalProperties"], f"{where}.{k}", root))
    if isinstance(value, list):
        if isinstance(schema.get("items"), dict):
            for i, v in enumerate(value):
                out.extend(_errors(v, schema["items"], f"{where}[{i}]", root))
        if len(value) < schema.get("minItems", 0):
            out.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{where}: more than {schema['maxItems']} items")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            out.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{where}: longer than {schema['maxLength']}")
    if _is(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{where}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{where}: above {schema['maximum']}")
    for sub in schema.get("allOf") or []:
        out.extend(_errors(value, sub, where, root))
    if "anyOf" in schema and all(_errors(value, s, where, root) for s in schema["anyOf"]):
        out.append(f"{where}: matches none of anyOf")
    if "oneOf" in schema and sum(not _errors(value, s, where, root) for s in schema["oneOf"]) != 1:
        out.append(f"{where}: does not match exactly one of oneOf")
    return out
