"""The lab: the embedded default cluster, on this machine."""
