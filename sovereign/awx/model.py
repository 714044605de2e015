"""The cluster's AWX configuration as a model, derived from the phase registry
(one job template per built phase), the playbooks (the options that gate a
reboot), the inventory (its name, its user, its models) and awx/settings.yml.
A new phase gets its template, its place in the workflow and, when its roles
have a gate option, an approval before it, without an edit here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sovereign.awx.playbooks import gate_options
from sovereign.engine.phases import PHASES, Phase
from sovereign.errors import InventoryError, validation_details
from sovereign.inventory import load_inventory
from sovereign.paths import project_root

SETTINGS = Path("awx") / "settings.yml"
MACHINE_CREDENTIAL = "sovereign nodes (SSH)"
VAULT_CREDENTIAL = "sovereign vault"
WORKFLOW = "sovereign build"


class ProjectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    scm_url: str = ""
    scm_branch: str = "main"


class EESettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    image: str = Field(min_length=1)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organization: str = Field(min_length=1)
    inventory: Path
    project: ProjectSettings
    execution_environment: EESettings
    approval_timeout_hours: int = Field(default=24, ge=0)


def load_settings(path: Path | None = None) -> Settings:
    file = path or project_root() / SETTINGS
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InventoryError(f"{file}: cannot be read: {exc}") from exc
    try:
        return Settings.model_validate(data or {})
    except ValidationError as exc:
        raise InventoryError(f"{file} does not validate",
                             details=validation_details(exc, str(file))) from exc


@dataclass(frozen=True)
class Question:
    """One survey question: an extra variable the template's playbook reads."""

    variable: str
    name: str
    description: str
    type: str = "text"
    default: Any = ""
    choices: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"question_name": self.name, "question_description": self.description,
                               "variable": self.variable, "type": self.type, "required": False,
                               "default": self.default}
        if self.choices:
            out["choices"] = list(self.choices)
        if self.min is not None:
            out["min"], out["max"] = self.min, self.max
        return out


@dataclass(frozen=True)
class JobTemplate:
    name: str
    playbook: str
    description: str
    survey: tuple[Question, ...] = ()
    # Role options that allow a reboot, reimage or erase: the workflow's approval sets them.
    gates: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Node:
    """A workflow node: a job (its template and extra data) or an approval."""

    identifier: str
    template: str | None = None
    extra_data: dict[str, Any] = field(default_factory=dict)
    approval: str | None = None
    description: str = ""


@dataclass(frozen=True)
class AwxConfig:
    settings: Settings
    inventory_name: str
    ssh_user: str
    templates: tuple[JobTemplate, ...]
    workflow: tuple[Node, ...]

    def template(self, playbook: str) -> JobTemplate:
        return next(t for t in self.templates if t.playbook == playbook)


def _yes_no(variable: str, description: str) -> Question:
    return Question(variable, variable, description, type="multiplechoice", default="false",
                    choices=("false", "true"))


def phase_template(p: Phase) -> JobTemplate:
    assert p.playbook is not None
    gates = gate_options(p.playbook)
    return JobTemplate(
        name=f"sovereign {p.name}: {p.title}", playbook=p.playbook,
        description=f"Phase {p.number} ({p.slug}): playbooks/{p.playbook} on {p.group}",
        survey=tuple(_yes_no(name, text) for name, text in gates.items()), gates=gates)


def validate_template() -> JobTemplate:
    return JobTemplate(
        name="sovereign validate", playbook="validate.yml",
        description="Collect a capture bundle from each node and judge it with sovereign's checks",
        survey=(Question("sovereign_validate_phase", "Phase",
                         "The phase whose preflight and verify checks to run (0: every check)",
                         type="integer", default=0, min=0, max=max(PHASES)),
                Question("sovereign_validate_ignore", "Ignore",
                         "Check ids that do not fail the job: ID,ID or all")))


def bench_template(models: list[str]) -> JobTemplate:
    survey: list[Question] = []
    if models:
        survey.append(Question("sovereign_bench_models", "Models",
                               "The models to bench (none chosen: every model a node serves alone)",
                               type="multiselect", choices=tuple(models)))
    survey.append(Question("sovereign_bench_repetitions", "Repetitions", "llama-bench repetitions per test",
                           type="integer", default=3, min=1, max=50))
    return JobTemplate(name="sovereign bench", playbook="bench.yml",
                       description="llama-bench on the nodes against the memory-bandwidth roofline",
                       survey=tuple(survey))


def build_workflow(phases: list[tuple[Phase, JobTemplate]], validate: JobTemplate) -> tuple[Node, ...]:
    """Phase by phase, each followed by its verify checks (validate.yml), with an
    approval before every phase whose roles have a gate option (which it then sets)."""
    nodes: list[Node] = []
    for p, template in phases:
        if template.gates:
            what = "; ".join(f"{name}=true: {text}" for name, text in template.gates.items())
            nodes.append(Node(f"approve-{p.name}", approval=f"Approve {p.name}: {p.title}",
                              description=f"{p.name} runs with {what}"))
        nodes.append(Node(p.name, template=template.name, extra_data=dict.fromkeys(template.gates, True)))
        nodes.append(Node(f"verify-{p.name}", template=validate.name,
                          extra_data={"sovereign_validate_phase": p.number}))
    return tuple(nodes)


def build(settings: Settings | None = None, inventory: Path | None = None) -> AwxConfig:
    s = settings or load_settings()
    inv = load_inventory(inventory or project_root() / s.inventory)
    nodes = [h for h in inv.hosts.values() if h.node is not None]
    users = sorted({str(h.vars.get("ansible_user", "root")) for h in nodes})
    if len(users) > 1:
        raise InventoryError(f"{inv.path}: ansible_user: the nodes log in as {', '.join(users)}",
                             hint="AWX's machine credential has one user; give every node the same one")
    models = sorted({m.name for h in nodes for m in h.node.sovereign_models})  # type: ignore[union-attr]
    built = [(p, phase_template(p)) for p in PHASES.values() if p.built]
    validate = validate_template()
    return AwxConfig(settings=s, inventory_name=inv.cluster_name, ssh_user=users[0] if users else "root",
                     templates=(*(t for _, t in built), validate, bench_template(models)),
                     workflow=build_workflow(built, validate))
