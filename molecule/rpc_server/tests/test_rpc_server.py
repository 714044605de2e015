"""What role rpc_server leaves on the two nodes of a split headed by mimical-1:
the worker's rpc-server on its fabric address behind nftables, the head's on
its loopback. Each test names the node it is about."""

import testinfra

HEAD = testinfra.get_host("podman://mimical-1")
WORKER = testinfra.get_host("podman://mimical-2")
PORT = 50052
HEAD_FABRIC, WORKER_FABRIC, STRANGER = "10.213.88.11", "10.213.88.12", "10.213.88.13"

CONNECT = ("python3 -c 'import socket, sys; s = socket.socket(); s.settimeout(3); "
           "s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], int(sys.argv[3]))); "
           "print(\"connected\")' {} {} {}")


def connects(node, source: str, target: str) -> bool:
    return node.run(CONNECT.format(source, target, PORT)).stdout.strip() == "connected"


def listening(node) -> list[str]:
    """The local addresses listening on the port (ss's fourth column)."""
    return [line.split()[3] for line in node.check_output(f"ss -H -t -l -n 'sport = :{PORT}'").splitlines()]


def test_worker_unit_runs_on_the_fabric_address(host):
    unit = WORKER.service("sovereign-rpc-server")
    assert unit.is_running and unit.is_enabled
    text = WORKER.file("/etc/systemd/system/sovereign-rpc-server.service").content_string
    assert f"--host {WORKER_FABRIC} --port {PORT}" in text and "--cache" in text
    assert "Requires=sovereign-rpc-firewall.service" in text


def test_worker_listens_on_its_fabric_address_alone(host):
    assert listening(WORKER) == [f"{WORKER_FABRIC}:{PORT}"]


def test_firewall_table_is_loaded_and_enabled(host):
    assert WORKER.service("sovereign-rpc-firewall").is_enabled
    table = WORKER.check_output("nft list table inet sovereign_rpc")
    assert f"ip saddr {HEAD_FABRIC} ip daddr {WORKER_FABRIC} tcp dport {PORT} accept" in table
    assert f"tcp dport {PORT} counter packets" in table and "drop" in table


def test_head_reaches_the_worker(host):
    assert connects(HEAD, HEAD_FABRIC, WORKER_FABRIC)


def test_anyone_else_is_dropped(host):
    # Another address on the same link, and the worker itself.
    assert not connects(HEAD, STRANGER, WORKER_FABRIC)
    assert not connects(WORKER, WORKER_FABRIC, WORKER_FABRIC)


def test_head_runs_its_loopback_server_only(host):
    unit = HEAD.service("sovereign-rpc-server-local")
    assert unit.is_running and unit.is_enabled
    assert listening(HEAD) == [f"127.0.0.1:{PORT}"]
    assert not HEAD.file("/etc/systemd/system/sovereign-rpc-server.service").exists
    assert HEAD.run("nft list table inet sovereign_rpc").rc != 0


def test_servers_run_as_their_user(host):
    for node in (HEAD, WORKER):
        # Started through the rpc-server link: that is its command name.
        users = node.check_output("ps -o user= -C rpc-server").split()
        assert users == ["sovereign-rpc"], users


def test_tensor_cache_directory(host):
    cache = WORKER.file("/var/cache/sovereign/rpc-server")
    assert cache.is_directory and cache.user == "sovereign-rpc" and cache.mode == 0o750
