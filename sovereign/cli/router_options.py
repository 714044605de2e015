"""What every `sovereign router ...` command reads its settings with (one definition each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from sovereign.cli.options import inventory_path

CONFIG = typer.Option(None, "--config", "-c", envvar="SOVEREIGN_ROUTER_CONFIG",
                      help="YAML/JSON file overriding the inventory's router settings "
                           "(on a node: /etc/sovereign/router/router.yml, set in the environment).",
                      show_default=False)
# `-i none` (or SOVEREIGN_INVENTORY=none): the configuration file alone, as on a
# node, where the router runs from the file that role `router` rendered.
NO_INVENTORY = "none"


# On a node: the service's environment file (role router exports its path).
ENV_FILE_VAR = "SOVEREIGN_ROUTER_ENV_FILE"


def router_settings(inventory: Path | None, config: Path | None) -> Any:
    from sovereign.router.config import load_settings
    from sovereign.service.settings import adopt_env_file

    adopt_env_file(ENV_FILE_VAR)

    path = inventory_path(inventory)
    return load_settings(None if str(path) == NO_INVENTORY else path, config)
