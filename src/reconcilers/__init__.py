"""Reconcilers for the Kernel custom resource: pure desired state plus a small applier."""
