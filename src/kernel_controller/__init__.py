"""The kernel-controller process: CLI, settings, manager and observability.

This is the one package that wires ``informers``, ``leader`` and ``reconcilers`` together.
"""
