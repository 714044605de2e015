"""What a failed task says in the engine's error: the words that name the cause."""

from __future__ import annotations

from sovereign.engine.runner import _message


def test_a_failed_command_says_its_stderr():
    res = {"rc": 127, "msg": "non-zero return code", "stderr": "line 1\nbench: libgomp.so.1: not found"}
    assert _message(res) == "bench: libgomp.so.1: not found"


def test_a_failed_loop_names_the_item_that_failed():
    res = {"msg": "One or more items failed", "results": [
        {"failed": False, "_ansible_item_label": "a"},
        {"failed": True, "_ansible_item_label": "smollm2-135m", "rc": 1, "stderr": "model not found"},
    ]}
    assert _message(res) == "smollm2-135m: model not found"


def test_a_plain_failure_says_its_msg():
    assert _message({"msg": "assertion failed\nmissing on mimical-2"}) == "missing on mimical-2"
    assert _message({}) == "failed"
