"""Live progress of a provision run, fed by ansible-runner events, and what
each phase did once it ends (sovereign.cli.render.phase_summary)."""

from __future__ import annotations

from rich.live import Live
from rich.table import Table

from sovereign.cli.render import console, phase_summary
from sovereign.engine.phases import Phase
from sovereign.engine.provision import HostPhaseReport
from sovereign.engine.runner import HostTally


class RichReporter:
    """Implements sovereign.engine.provision.Reporter with a rich live table.

    Quiet by default: the live table goes once a stage ends, and each phase ends
    with a line per host and the checks that warned or failed. `verbose` keeps
    the tables, a line per stage, and shows every check."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose
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
                         transient=not (self.verbose and console.is_terminal))
        self.live.start()

    def task(self, host: str, tally: HostTally) -> None:
        row = self.rows.setdefault(host, HostTally())
        row.task = tally.task
        row.unreachable = tally.unreachable
        # Live counts from events; ansible's final stats replace them at the end.
        row.ok, row.changed, row.failed = tally.ok, tally.changed, tally.failed
        if self.live:
            self.live.update(self._table())

    def _stop(self) -> None:
        if self.live:
            self.live.stop()
            self.live = None

    def stage_done(self, phase: Phase, stage: str) -> None:
        self._stop()
        if not self.verbose and stage.startswith(phase.name):
            return  # a phase's own stage: its summary (phase_done) says what it did
        counts = ", ".join(
            f"{h}: {'unreachable' if t.unreachable else f'{t.ok} ok {t.changed} changed {t.failed} failed'}"
            for h, t in self.rows.items())
        console.print(f"[bold]{stage}[/] done ({counts})" if "collect" not in stage
                      else f"[dim]{stage}: done[/]")

    def phase_done(self, phase: Phase, reports: list[HostPhaseReport]) -> None:
        self._stop()  # a stage that an error ended
        for renderable in phase_summary(phase.name, reports, verbose=self.verbose):
            console.print(renderable)

    def note(self, text: str) -> None:
        console.print(f"[dim]{text}[/]")
