"""The cluster's AWX configuration as code: the model (model.py, derived from
the phase registry, the playbooks and the inventory), its rendering to the
awx.awx modules' calls (render.py), and their check against the modules' own
argument specs (argspecs.py). docs/awx.md."""
