"""Generation of the Kernel CustomResourceDefinition (``generate.py``)."""
