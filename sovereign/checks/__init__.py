"""Preflight and verify checks: stable ids, pass/warn/fail/skip, a hint each."""

from sovereign.checks import node, kernel, rocm, devices, fabric, inference, data  # noqa: F401, I001 - registration order = display order
from sovereign.checks.model import CheckResult, Expectations, Status
from sovereign.checks.registry import REGISTRY, parse_ignore, run_checks, unknown_ids

__all__ = ["REGISTRY", "CheckResult", "Expectations", "Status", "parse_ignore", "run_checks",
           "unknown_ids"]
