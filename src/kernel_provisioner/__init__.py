"""Jupyter integration: a ``jupyter_client`` kernel provisioner that runs every kernel as a
Kernel resource of the Jupyter Kernel Controller (SPEC §12), and the kernelspec installer.

A client of the Kubernetes API that runs in someone else's process (Jupyter Server,
JupyterLab, nbclient, papermill): it uses the generic ``informers`` package and the names of
``reconcilers.model``, never the controller's internals (an import contract checks it).
Importing it does nothing; ``jupyter_client`` loads
:class:`~kernel_provisioner.provisioner.KernelControllerProvisioner` through the entry point
``kernel-controller-provisioner``.
"""
