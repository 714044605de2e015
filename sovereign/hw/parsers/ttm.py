"""/sys/module/{ttm,amdttm}/parameters: the GPU memory pool limits in force."""

from __future__ import annotations

import re
from typing import Literal

from sovereign.hw.parsers.base import ParseResult, clean_lines, try_int

_LINE_RE = re.compile(r"^(?:/sys/module/)?(ttm|amdttm)/parameters/([A-Za-z0-9_]+):(.*)$")


class TtmParams(ParseResult):
    # The module in use: amdttm (AMD's DKMS driver) when present, else ttm.
    module: Literal["ttm", "amdttm"] | None = None
    params: dict[str, str] = {}
    modules: dict[str, dict[str, str]] = {}
    pages_limit: int | None = None
    page_pool_size: int | None = None


def parse(text: str) -> TtmParams:
    """Read `grep -r . /sys/module/ttm/parameters /sys/module/amdttm/parameters`."""
    result = TtmParams()
    for number, line in enumerate(clean_lines(text), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        m = _LINE_RE.match(stripped)
        if not m:
            result.problems.append(f"line {number}: not a module parameter line: {stripped[:80]!r}")
            continue
        module, name, value = m.groups()
        result.modules.setdefault(module, {})[name] = value.strip()
    for module in ("amdttm", "ttm"):
        if module in result.modules:
            result.module = module  # type: ignore[assignment]
            result.params = dict(result.modules[module])
            break
    result.pages_limit = try_int(result.params.get("pages_limit"))
    result.page_pool_size = try_int(result.params.get("page_pool_size"))
    return result
