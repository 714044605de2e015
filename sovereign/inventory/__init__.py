"""The inventory: the one source of truth for the cluster."""

from sovereign.inventory.loader import Inventory, Problem, load_inventory

__all__ = ["Inventory", "Problem", "load_inventory"]
