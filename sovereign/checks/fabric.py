"""Fabric truths: the RoCE v2 link between the two nodes, measured, not assumed.

A BF2M515A is most likely a 100GbE card and the Framework Desktop's PCIe 4.0
x4 slot caps any NIC near 50 Gb/s; back-to-back RoCE v2 without a switch wants
MTU 9000 and the IPv4-mapped GID (DESIGN.md §4)."""

from __future__ import annotations

from sovereign.checks.model import CheckResult, Expectations, Status
from sovereign.checks.registry import check, skip
from sovereign.hw.facts import Facts

# The largest RoCE (IB) MTU; a 9000-byte netdev MTU makes it available.
ROCE_MTU_MAX = 4096


def _rdma_netdevs(facts: Facts) -> list[str]:
    links = facts.get("rdma-link.txt")
    return [link.netdev for link in links.links if link.netdev] if links is not None else []


@check("RDMA-LINK-ACTIVE", "an RDMA port is active")
def rdma_link_active(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "RDMA-LINK-ACTIVE"
    links = facts.get("rdma-link.txt")
    info = facts.get("ibv_devinfo.txt")
    ports = []
    if links is not None:
        ports += [(f"{lk.device}/{lk.port}", (lk.state or "").upper()) for lk in links.links]
    if info is not None:
        ports += [(f"{d.name}/{p.port}", (p.state or "").upper()) for d in info.devices for p in d.ports]
    if links is None and info is None:
        return skip(check_id, facts.why_missing("rdma-link.txt", "ibv_devinfo.txt"))
    active = sorted({name for name, state in ports if "ACTIVE" in state})
    if active:
        return CheckResult(id=check_id, status=Status.PASS, message=f"active: {', '.join(active)}")
    seen = ", ".join(f"{n} {s or '?'}" for n, s in ports) or "no RDMA device"
    return CheckResult(id=check_id, status=Status.FAIL, message=seen,
                       hint="check the DAC cable and that both ends are up (`ip link set <netdev> up`)")


@check("RDMA-MTU", "the RoCE path MTU allows jumbo frames")
def rdma_mtu(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "RDMA-MTU"
    info = facts.get("ibv_devinfo.txt")
    if info is None:
        return skip(check_id, facts.why_missing("ibv_devinfo.txt"))
    ports = [(d.name, p) for d in info.devices for p in d.ports
             if (p.link_layer or "").lower() == "ethernet" and p.active_mtu]
    if not ports:
        return skip(check_id, "no RoCE (Ethernet link layer) port with an active MTU")
    want = ROCE_MTU_MAX if expect.fabric_mtu >= ROCE_MTU_MAX + 100 else None
    low = [(n, p) for n, p in ports if want and (p.active_mtu or 0) < want]
    summary = ", ".join(f"{n}/{p.port} active_mtu {p.active_mtu}" for n, p in ports)
    if low:
        return CheckResult(id=check_id, status=Status.WARN, message=summary,
                           hint=f"set MTU {expect.fabric_mtu} on the fabric netdev at both ends "
                                f"(RoCE then uses {ROCE_MTU_MAX})")
    return CheckResult(id=check_id, status=Status.PASS, message=summary)


@check("ROCE-V2-GID", "a RoCE v2 GID maps the fabric IPv4 address")
def roce_v2_gid(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "ROCE-V2-GID"
    gids = facts.get("show_gids.txt")
    if gids is None:
        return skip(check_id, facts.why_missing("show_gids.txt"))
    v2 = gids.ipv4_v2()
    if expect.fabric_address:
        mine = [e for e in v2 if e.ipv4 == expect.fabric_address]
        if mine:
            e = mine[0]
            return CheckResult(id=check_id, status=Status.PASS,
                               message=f"{e.dev} port {e.port} index {e.index}: {e.ipv4} (v2)")
    if v2 and expect.fabric_address is None:
        found = ", ".join(f"{e.dev}/{e.port}#{e.index} {e.ipv4}" for e in v2)
        return CheckResult(id=check_id, status=Status.PASS, message=f"v2 GIDs: {found}")
    if v2:
        found = ", ".join(f"{e.dev}/{e.port}#{e.index} {e.ipv4}" for e in v2)
        return CheckResult(id=check_id, status=Status.WARN,
                           message=f"v2 GIDs for {found}, none for {expect.fabric_address}",
                           hint="assign sovereign_fabric_address to the RoCE netdev")
    return CheckResult(id=check_id, status=Status.FAIL, message="no IPv4-mapped RoCE v2 GID",
                       hint="assign the fabric IPv4 address to the RoCE netdev; use its v2 GID "
                            "index (GGML_RDMA_GID) for llama.cpp RPC")


@check("LINK-SPEED", "the fabric link runs at the speed the inventory claims")
def link_speed(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "LINK-SPEED"
    eth = facts.get("ethtool.txt")
    if eth is None:
        return skip(check_id, facts.why_missing("ethtool.txt"))
    fabric = _rdma_netdevs(facts)
    candidates = [i for i in eth.interfaces if i.speed_mbps and (not fabric or i.interface in fabric)]
    if not candidates:
        return skip(check_id, "no interface reports a link speed")
    fastest = max(candidates, key=lambda i: i.speed_mbps or 0)
    gbps = (fastest.speed_mbps or 0) / 1000
    msg = f"{fastest.interface}: {gbps:g} Gb/s measured, {expect.claimed_speed_gbps:g} Gb/s claimed"
    if gbps + 1e-9 >= expect.claimed_speed_gbps:
        return CheckResult(id=check_id, status=Status.PASS, message=msg)
    return CheckResult(id=check_id, status=Status.WARN, message=msg,
                       hint="set sovereign_fabric.claimed_speed_gbps to the measured speed; a PCIe "
                            "4.0 x4 slot caps a NIC near 50 Gb/s")


@check("DPU-MODE", "the BlueField runs in the mode the inventory names")
def dpu_mode(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "DPU-MODE"
    if expect.dpu_mode is None:
        return skip(check_id, "no DPU in the inventory for this node")
    conf = facts.get("mlxconfig.txt")
    if conf is None:
        return skip(check_id, facts.why_missing("mlxconfig.txt"))
    mode = conf.mode
    if mode is None:
        return skip(check_id, "mlxconfig shows no INTERNAL_CPU_MODEL (not a BlueField?)")
    if mode == expect.dpu_mode:
        return CheckResult(id=check_id, status=Status.PASS, message=f"{mode} mode")
    return CheckResult(id=check_id, status=Status.FAIL,
                       message=f"{mode} mode, the inventory expects {expect.dpu_mode}",
                       hint="set the mode with mlxconfig (INTERNAL_CPU_MODEL, "
                            "INTERNAL_CPU_OFFLOAD_ENGINE) and power-cycle, or fix sovereign_dpu.mode")
