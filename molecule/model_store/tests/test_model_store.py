"""What role model_store leaves on mimical-1: SmolLM2 135M in the store, checked."""

STORE = "/var/lib/sovereign/models"
FILE = f"{STORE}/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def test_store_directory(host):
    store = host.file(STORE)
    assert store.is_directory and store.user == "root" and store.mode == 0o755


def test_corrupted_copy_was_replaced(host):
    # The prepare step planted a 25-byte "model"; the role replaced it.
    model = host.file(FILE)
    assert model.is_file and model.user == "root" and model.mode == 0o644
    assert model.size == 98362432
    assert host.check_output(f"sha256sum {FILE}").split()[0] == SHA256


def test_nothing_half_written_left(host):
    assert host.check_output(f"find {STORE} -name '*.partial' | wc -l") == "0"


def test_only_the_models_headed_here(host):
    # `elsewhere` is placed on another node, `unpinned` was refused.
    assert host.check_output(f"ls -A {STORE}").split() == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
