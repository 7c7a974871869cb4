"""Generic Kubernetes informers: reflector, store, shared informer and work queue.

This package knows nothing about any particular resource kind. It follows the behaviour of
client-go's ``tools/cache`` and ``util/workqueue``.
"""
