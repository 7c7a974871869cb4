"""Generic leader election on a ``coordination.k8s.io/v1`` Lease (after client-go's
``tools/leaderelection``). It knows nothing about what the leader does."""
