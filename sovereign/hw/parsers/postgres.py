"""Phase 6's database as its node sees it (the collector's `postgres.txt`).

Sections, each after a `# NAME` line: `pg_lsclusters` (Debian's
postgresql-common: version, name, port, status, owner, data directory, log),
`settings` (`name=value` from pg_settings), `pg_hba_file_rules` (the rules
as the server parsed them, `|`-separated: line, type, databases, users,
address, netmask, method, error) and one `tls ADDRESS:PORT` per address
probed (`openssl s_client -starttls postgres -brief`, verified against the
cluster CA: "Verification: OK", or the error, or nothing when the server
refused TLS).
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_SECTION = re.compile(r"^#\s*(pg_lsclusters|settings|pg_hba_file_rules|tls\s+(\S+):(\d+))\s*$")


class Cluster(BaseModel):
    version: str
    name: str
    port: int
    status: str


class HbaRule(BaseModel):
    line: int
    type: str
    databases: list[str]
    users: list[str]
    address: str = ""
    netmask: str = ""
    method: str
    error: str = ""

    @property
    def network(self) -> str:
        """`10.213.77.11/32`, `0.0.0.0/0`, or "" for local rules."""
        if not self.address:
            return ""
        if not self.netmask:
            return self.address
        try:
            return str(ipaddress.ip_network(f"{self.address}/{self.netmask}", strict=False))
        except ValueError:
            return f"{self.address}/{self.netmask}"


class TlsProbe(BaseModel):
    address: str
    port: int
    connected: bool = False
    verified: bool = False
    protocol: str | None = None
    peer: str | None = None
    # What refused: the verification's error, or the connection's.
    error: str | None = None


class Postgres(ParseResult):
    clusters: list[Cluster] = []
    settings: dict[str, str] = {}
    hba: list[HbaRule] = []
    tls: list[TlsProbe] = []

    def probe(self, address: str, port: int) -> TlsProbe | None:
        return next((p for p in self.tls if p.address == address and p.port == port), None)


def _cluster(line: str, result: Postgres) -> None:
    parts = line.split()
    if len(parts) < 4 or not parts[2].isdigit():
        result.problems.append(f"pg_lsclusters: cannot read {line!r}")
        return
    result.clusters.append(Cluster(version=parts[0], name=parts[1], port=int(parts[2]), status=parts[3]))


def _rule(line: str, result: Postgres) -> None:
    parts = line.split("|")
    if len(parts) < 7 or not parts[0].strip().isdigit():
        result.problems.append(f"pg_hba_file_rules: cannot read {line!r}")
        return
    parts += [""] * (8 - len(parts))
    result.hba.append(HbaRule(line=int(parts[0]), type=parts[1],
                              databases=parts[2].split(",") if parts[2] else [],
                              users=parts[3].split(",") if parts[3] else [], address=parts[4],
                              netmask=parts[5], method=parts[6], error="|".join(parts[7:]).strip()))


def _tls(line: str, probe: TlsProbe) -> None:
    if line == "CONNECTION ESTABLISHED":
        probe.connected = True
    elif line.startswith("Protocol version:"):
        probe.protocol = line.split(":", 1)[1].strip()
    elif line.startswith("Peer certificate:"):
        probe.peer = line.split(":", 1)[1].strip()
    elif line.startswith("Verification:"):
        verdict = line.split(":", 1)[1].strip()
        probe.verified = verdict == "OK"
        probe.error = None if probe.verified else verdict
    elif line.startswith("Verification error:"):
        probe.verified, probe.error = False, line.split(":", 1)[1].strip()
    elif "errno=" in line or ":error:" in line:
        probe.error = probe.error or line


def parse(text: str) -> Postgres:
    result = Postgres()
    section: str | None = None
    probe: TlsProbe | None = None
    for raw in clean_lines(text):
        line = raw.strip()
        if not line:
            continue
        if m := _SECTION.match(line):
            section = "tls" if m.group(2) else m.group(1)
            if m.group(2):
                probe = TlsProbe(address=m.group(2), port=int(m.group(3)))
                result.tls.append(probe)
            continue
        if section == "pg_lsclusters":
            _cluster(line, result)
        elif section == "settings" and "=" in line:
            name, _, value = line.partition("=")
            result.settings[name.strip()] = value.strip()
        elif section == "pg_hba_file_rules":
            _rule(line, result)
        elif section == "tls" and probe is not None:
            _tls(line, probe)
    return result
