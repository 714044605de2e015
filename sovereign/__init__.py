"""sovereign: provisioner and runtime of a private two-node AI cluster."""

__version__ = "0.1.0"
