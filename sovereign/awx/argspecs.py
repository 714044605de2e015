"""The awx.awx modules' own argument specs, taken by running each module's
`main()` from the collection that the `ansible` package ships up to the point
where it builds its module object, and the check of a call against them with
Ansible's own validator: unknown keys, wrong types and choices, required ones
missing, and the keys of a dict option the module documents but does not
declare (a workflow node's approval_node)."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import yaml

from sovereign.errors import EnvironmentProblem

_PACKAGE = "ansible_collections.awx.awx.plugins"


class _Captured(Exception):
    def __init__(self, spec: dict[str, Any], kwargs: dict[str, Any]):
        super().__init__("captured")
        self.spec, self.kwargs = spec, kwargs


class _Capture:
    def __init__(self, argument_spec: dict[str, Any] | None = None, **kwargs: Any):
        raise _Captured(dict(argument_spec or {}), kwargs)


@cache
def module_spec(module: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(argument_spec with the connection options, the validator's other keywords,
    the module's documented options) of awx.awx.<module>."""
    try:
        mod = importlib.import_module(f"{_PACKAGE}.modules.{module}")
        api = importlib.import_module(f"{_PACKAGE}.module_utils.controller_api")
    except ModuleNotFoundError as exc:
        raise EnvironmentProblem(f"awx.awx.{module} is not installed ({exc.name})",
                                 hint="the awx.awx collection ships with the `ansible` package: "
                                      "pip install 'sovereign[collections]'") from None
    original = mod.ControllerAPIModule
    mod.ControllerAPIModule = _Capture
    try:
        mod.main()
    except _Captured as got:
        spec, kwargs = got.spec, got.kwargs
    else:
        raise EnvironmentProblem(f"awx.awx.{module}: main() built no module object")
    finally:
        mod.ControllerAPIModule = original
    docs = (yaml.safe_load(mod.DOCUMENTATION) or {}).get("options") or {}
    keywords = {k: v for k, v in kwargs.items()
                if k in ("mutually_exclusive", "required_together", "required_one_of", "required_if",
                         "required_by")}
    return {**api.ControllerModule.AUTH_ARGSPEC, **spec}, keywords, docs


def problems(module: str, params: dict[str, Any]) -> list[str]:
    """What is wrong with a call of awx.awx.<module> with `params` (nothing: [])."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec, keywords, docs = module_spec(module)
    result = ArgumentSpecValidator(spec, **keywords).validate(params)
    found = [str(e) for e in result.errors]
    for key, value in params.items():
        declared, documented = spec.get(key, {}), docs.get(key, {})
        sub = documented.get("suboptions")
        if declared.get("options") or not sub or not isinstance(value, dict):
            continue
        found += [f"{key}: unsupported parameter {k} (supported: {', '.join(sorted(sub))})"
                  for k in value if k not in sub]
        found += [f"{key}: missing required parameter {k}" for k, o in sub.items()
                  if o.get("required") and k not in value]
    return found
