"""What role backup leaves on mimical-1 (restic, no database): the timer
enabled and scheduled, the oneshot unit it starts, a snapshot per start,
`verify` passing, the password in the environment file alone, and a snapshot
of an empty path set failing the unit."""

import json
import shlex

UNIT = "sovereign-backup"
ENV = "/etc/sovereign/backup/env"
CONFIG = "/etc/sovereign/backup/backup.yml"
REPO = "/var/lib/sovereign/backup/repository"
PASSWORD = "molecule-backup-pw-Qx71-not-secret"
# The role's own way to run a command as the unit's user (roles/backup/vars/main.yml).
AS_UNIT = ("systemd-run --quiet --wait --pipe --collect --service-type=exec --uid=sovereign-backup "
           f"--gid=sovereign-backup --property=EnvironmentFile={ENV} "
           "--property=Environment=SOVEREIGN_INVENTORY=none "
           f"--property=Environment=HOME=/var/lib/sovereign/backup /opt/sovereign/backup/bin/python "
           f"-m sovereign.backup --config {CONFIG}")
# Where the password may be, were it written anywhere (the repository is encrypted).
SEARCHED = "/etc /var /opt /root /tmp /srv /home /usr/local"


def _snapshots(host):
    """restic's own count, read as root without a cache or a lock."""
    out = host.check_output(
        f"sh -c '. {ENV} && RESTIC_PASSWORD=\"$SOVEREIGN_BACKUP_PASSWORD\" restic --repo {REPO} --no-cache "
        "--no-lock snapshots --json'")
    return json.loads(out)


def test_the_timer_is_enabled_and_scheduled(host):
    timer = host.service(f"{UNIT}.timer")
    assert timer.is_enabled and timer.is_running
    shown = host.check_output(f"systemctl show {UNIT}.timer -p TimersCalendar -p NextElapseUSecRealtime")
    assert "OnCalendar=*-*-* 03:30:00" in shown
    assert "NextElapseUSecRealtime=" in shown and "NextElapseUSecRealtime=\n" not in shown + "\n"
    lines = host.file(f"/etc/systemd/system/{UNIT}.timer").content_string.splitlines()
    assert "Persistent=true" in lines and "RandomizedDelaySec=10min" in lines


def test_the_unit_is_a_oneshot_run_by_its_timer(host):
    lines = host.file(f"/etc/systemd/system/{UNIT}.service").content_string.splitlines()
    assert "Type=oneshot" in lines
    assert f"ExecStart=/opt/sovereign/backup/bin/python -m sovereign.backup --config {CONFIG} run" in lines
    assert not [line for line in lines if line.startswith(("Restart=", "WantedBy=", "[Install]"))]
    for line in ("User=sovereign-backup", "AmbientCapabilities=CAP_DAC_READ_SEARCH",
                 f"ReadWritePaths={REPO}", "ProtectSystem=strict"):
        assert line in lines, line
    assert host.check_output(f"systemctl show {UNIT}.service -p Type --value") == "oneshot"
    repo = host.file(REPO)
    assert (repo.user, repo.mode) == ("sovereign-backup", 0o700)


def test_a_start_of_the_service_makes_a_new_snapshot(host):
    before = _snapshots(host)
    assert len(before) >= 1  # the role's first backup at deploy
    host.run_expect([0], f"systemctl start {UNIT}.service")
    after = _snapshots(host)
    assert len(after) == len(before) + 1
    newest = max(after, key=lambda s: s["time"])
    assert "sovereign-backup" in newest["tags"] and "/etc/sovereign" in newest["paths"]
    assert host.check_output(f"systemctl show {UNIT}.service -p Result --value") == "success"


def test_verify_passes(host):
    done = host.run(f"{AS_UNIT} verify")
    assert done.rc == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["files"] > 1


def test_the_password_is_in_the_environment_file_alone(host):
    env = host.file(ENV)
    assert (env.user, env.group, env.mode) == ("root", "sovereign-backup", 0o640)
    assert f"SOVEREIGN_BACKUP_PASSWORD={PASSWORD}" in env.content_string
    assert PASSWORD not in host.file(CONFIG).content_string
    assert PASSWORD not in host.check_output("journalctl --no-pager --output cat")
    found = host.run(f"grep -rlF -- {PASSWORD} {SEARCHED}").stdout.split()
    assert found == [ENV]


def test_a_snapshot_of_an_empty_path_set_fails_the_unit(host):
    """Last: a runtime drop-in points the unit at an empty directory, then goes."""
    before = _snapshots(host)
    setup = ("mkdir -p /srv/empty /run/systemd/system/sovereign-backup.service.d && "
             "echo 'SOVEREIGN_BACKUP_PATHS=[\"/srv/empty\"]' > /run/sovereign-empty.env && "
             "printf '[Service]\\nEnvironmentFile=/run/sovereign-empty.env\\n' "
             "> /run/systemd/system/sovereign-backup.service.d/empty.conf && systemctl daemon-reload")
    host.run_expect([0], f"sh -c {shlex.quote(setup)}")
    try:
        started = host.run(f"systemctl start {UNIT}.service")
        assert started.rc != 0
        assert host.check_output(f"systemctl show {UNIT}.service -p ExecMainStatus --value") == "4"
        journal = host.check_output(f"journalctl -u {UNIT} --no-pager --output cat -n 20")
        assert "holds no data" in journal
        assert len(_snapshots(host)) == len(before)  # dropped
    finally:
        host.run("rm -rf /run/systemd/system/sovereign-backup.service.d /run/sovereign-empty.env && "
                 f"systemctl daemon-reload && systemctl reset-failed {UNIT}.service")
