"""The AWX model as the calls of the awx.awx modules, in the order AWX needs
them (what a call names exists before it), and those calls as a YAML file
(the configuration as code) and as the playbook that applies it
(playbooks/awx.yml). Secrets and the AWX address are variables of the
vault, resolved when the playbook runs, never written here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sovereign.awx.model import MACHINE_CREDENTIAL, VAULT_CREDENTIAL, WORKFLOW, AwxConfig, JobTemplate

COLLECTION = "awx.awx"
# The vault variables that playbooks/awx.yml reads (docs/awx.md).
URL_VAR, TOKEN_VAR, SSH_KEY_VAR = "vault_awx_url", "vault_awx_token", "vault_awx_ssh_private_key"
# Extra variables that `sovereign awx apply` passes.
SCM_URL_VAR, VAULT_PASSWORD_FILE_VAR = "sovereign_awx_scm_url", "sovereign_awx_vault_password_file"
SECRET_MODULES = frozenset({"credential"})
HEADER = """\
# Rendered by `sovereign awx render` from the phase registry, the playbooks,
# the inventory and awx/settings.yml: edit those, then render again.
"""


@dataclass(frozen=True)
class Call:
    module: str
    params: dict[str, Any]

    @property
    def title(self) -> str:
        what = self.module.replace("_", " ").capitalize()
        return f"{what}: {self.params.get('identifier') or self.params['name']}"


class _Dumper(yaml.SafeDumper):
    """Block sequences indented under their key (yamllint's default)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)


def _var(name: str) -> str:
    return "{{ " + name + " }}"


def _template(c: AwxConfig, t: JobTemplate) -> dict[str, Any]:
    s = c.settings
    params: dict[str, Any] = {
        "name": t.name, "description": t.description, "organization": s.organization,
        "job_type": "run", "inventory": c.inventory_name, "project": s.project.name,
        "playbook": f"playbooks/{t.playbook}", "credentials": [MACHINE_CREDENTIAL, VAULT_CREDENTIAL],
        "execution_environment": s.execution_environment.name,
        # Limit and check mode are asked at launch (AWX's own prompts: a survey
        # only sets extra variables); --check runs with --diff, as the CLI does.
        "ask_limit_on_launch": True, "ask_job_type_on_launch": True, "ask_diff_mode_on_launch": True,
        "survey_enabled": bool(t.survey),
    }
    if t.survey:
        params["survey_spec"] = {"name": t.name, "description": t.description,
                                 "spec": [q.spec() for q in t.survey]}
    return params


def _workflow_nodes(c: AwxConfig) -> list[Call]:
    """Last node first: each one's success_nodes exist when it is created."""
    s, calls = c.settings, []
    nodes = list(c.workflow)
    for i in reversed(range(len(nodes))):
        n = nodes[i]
        params: dict[str, Any] = {"identifier": n.identifier, "workflow_job_template": WORKFLOW,
                                  "organization": s.organization}
        if n.approval:
            params["approval_node"] = {"name": n.approval, "description": n.description,
                                       "timeout": s.approval_timeout_hours * 3600}
        else:
            params["unified_job_template"] = n.template
            params["lookup_organization"] = s.organization
            if n.extra_data:
                params["extra_data"] = dict(n.extra_data)
        if i + 1 < len(nodes):
            params["success_nodes"] = [nodes[i + 1].identifier]
        calls.append(Call("workflow_job_template_node", params))
    return calls


def calls(c: AwxConfig) -> list[Call]:
    s = c.settings
    org = s.organization
    out = [
        Call("organization", {"name": org, "description": "The Mimical-Sovereign cluster"}),
        Call("execution_environment", {"name": s.execution_environment.name,
                                       "image": s.execution_environment.image, "organization": org,
                                       "pull": "missing",
                                       "description": "awx/execution-environment.yml"}),
        Call("project", {"name": s.project.name, "organization": org, "scm_type": "git",
                         "scm_url": _var(SCM_URL_VAR), "scm_branch": s.project.scm_branch,
                         "scm_update_on_launch": True, "scm_clean": True,
                         "default_environment": s.execution_environment.name, "wait": True}),
        Call("credential", {"name": MACHINE_CREDENTIAL, "organization": org, "credential_type": "Machine",
                            "description": "SSH to the nodes (the inventory's ansible_user)",
                            "inputs": {"username": c.ssh_user, "ssh_key_data": _var(SSH_KEY_VAR)}}),
        Call("credential", {"name": VAULT_CREDENTIAL, "organization": org, "credential_type": "Vault",
                            "description": "Opens the inventory's ansible-vault files",
                            "inputs": {"vault_password":
                                       _var(f"lookup('ansible.builtin.file', {VAULT_PASSWORD_FILE_VAR})")}}),
        Call("inventory", {"name": c.inventory_name, "organization": org,
                           "description": f"{s.inventory} of the {s.project.name} project"}),
        Call("inventory_source", {"name": f"{c.inventory_name} from {s.project.name}",
                                  "inventory": c.inventory_name, "organization": org, "source": "scm",
                                  "source_project": s.project.name, "source_path": str(s.inventory),
                                  "overwrite": True, "overwrite_vars": True, "update_on_launch": True,
                                  "execution_environment": s.execution_environment.name}),
    ]
    out += [Call("job_template", _template(c, t)) for t in c.templates]
    out.append(Call("workflow_job_template", {
        "name": WORKFLOW, "organization": org, "inventory": c.inventory_name,
        "description": "Every built phase in order, each verified, with an approval before each reboot",
        "ask_limit_on_launch": True, "destroy_current_nodes": True}))
    out += _workflow_nodes(c)
    return out


def config_document(c: AwxConfig) -> str:
    data = [{"module": f"{COLLECTION}.{k.module}", "params": k.params} for k in calls(c)]
    return "---\n" + HEADER + _dump(data)


def playbook_document(c: AwxConfig) -> str:
    tasks: list[dict[str, Any]] = [{
        "name": "Require the AWX address and token, and the project's address",
        "ansible.builtin.assert": {
            "that": [f"{v} is defined and {v} | length > 0" for v in (URL_VAR, TOKEN_VAR, SSH_KEY_VAR,
                                                                     SCM_URL_VAR, VAULT_PASSWORD_FILE_VAR)],
            "fail_msg": (f"set {URL_VAR}, {TOKEN_VAR} and {SSH_KEY_VAR} in the inventory's vault "
                         f"(group_vars/all/vault.yml) and pass {SCM_URL_VAR} and {VAULT_PASSWORD_FILE_VAR} "
                         "(sovereign awx apply does)"),
            "quiet": True}}]
    for k in calls(c):
        task: dict[str, Any] = {"name": k.title, f"{COLLECTION}.{k.module}": k.params}
        if k.module in SECRET_MODULES:
            task["no_log"] = True
        tasks.append(task)
    auth = {"controller_host": _var(URL_VAR), "controller_oauthtoken": _var(TOKEN_VAR)}
    play = [{"name": "The cluster's AWX configuration", "hosts": "localhost", "connection": "local",
             "gather_facts": False, "module_defaults": {f"group/{COLLECTION}.controller": auth},
             "tasks": tasks}]
    return ("---\n" + HEADER + "# It applies that configuration with the awx.awx modules: "
            "`sovereign awx apply` (docs/awx.md).\n" + _dump(play))


def write(c: AwxConfig, playbook: Path, config: Path) -> list[Path]:
    """Write the playbook and the configuration file; return their paths."""
    for path, text in ((playbook, playbook_document(c)), (config, config_document(c))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return [playbook, config]
