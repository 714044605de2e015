"""Capacity planning: memory fit, layer-split ratios and the decode roofline."""

from sovereign.planner.capacity import assert_plan_fits, llama_server_split, plan
from sovereign.planner.model import ClusterPlan, ModelPlan, NodeCapacity, NodeShare, Roofline

__all__ = ["ClusterPlan", "ModelPlan", "NodeCapacity", "NodeShare", "Roofline", "assert_plan_fits",
           "llama_server_split", "plan"]
