"""Live progress of a provision run, fed by ansible-runner events."""

from __future__ import annotations

from rich.live import Live
from rich.table import Table

from sovereign.checks import CheckResult
from sovereign.cli.render import checks_table, console
from sovereign.engine.phases import Phase
from sovereign.engine.runner import HostTally


class RichReporter:
    """Implements sovereign.engine.provision.Reporter with a rich live table."""

    def __init__(self, quiet_checks: bool = False):
        self.quiet_checks = quiet_checks
        self.live: Live | None = None
        self.label = ""
        self.rows: dict[str, HostTally] = {}

    def _table(self) -> Table:
        table = Table(title=self.label, title_justify="left", expand=False)
        table.add_column("host", no_wrap=True)
        table.add_column("task", overflow="ellipsis", no_wrap=True, max_width=60)
        for name, style in (("ok", "green"), ("changed", "yellow"), ("failed", "red")):
            table.add_column(name, justify="right", style=style)
        for host, t in self.rows.items():
            state = "[red]unreachable[/]" if t.unreachable else t.task
            table.add_row(host, state, str(t.ok), str(t.changed), str(t.failed))
        return table

    def stage(self, phase: Phase, stage: str, hosts: list[str]) -> None:
        self.label = f"{stage} — {phase.title}"
        self.rows = {h: HostTally() for h in hosts}
        self.live = Live(self._table(), console=console, refresh_per_second=8,
                         transient=not console.is_terminal)
        self.live.start()

    def task(self, host: str, tally: HostTally) -> None:
        row = self.rows.setdefault(host, HostTally())
        row.task = tally.task
        row.unreachable = tally.unreachable
        # Live counts from events; ansible's final stats replace them at the end.
        row.ok, row.changed, row.failed = tally.ok, tally.changed, tally.failed
        if self.live:
            self.live.update(self._table())

    def stage_done(self, phase: Phase, stage: str) -> None:
        if self.live:
            self.live.stop()
            self.live = None
        counts = ", ".join(
            f"{h}: {'unreachable' if t.unreachable else f'{t.ok} ok {t.changed} changed {t.failed} failed'}"
            for h, t in self.rows.items())
        console.print(f"[bold]{stage}[/] done ({counts})" if "collect" not in stage
                      else f"[dim]{stage}: done[/]")

    def checks(self, phase: Phase, stage: str, host: str, results: list[CheckResult]) -> None:
        if results and not self.quiet_checks:
            console.print(checks_table(f"{phase.name} {stage} — {host}", results))

    def note(self, text: str) -> None:
        console.print(f"[dim]{text}[/]")
