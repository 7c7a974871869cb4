"""Generic Kubernetes informers: REST transport, reflector, indexer, shared informer and work
queue, after client-go's ``tools/cache`` and ``util/workqueue``.

This package knows nothing about any particular resource kind. The names below are its public
interface; other packages import only these.
"""

from informers.backoff import JitteredBackoff
from informers.client import (
    APPLY_PATCH,
    JSON,
    MERGE_PATCH,
    RequestInfo,
    RequestObserver,
    RestClient,
    Throttle,
    WatchEvent,
    WatchStream,
)
from informers.clock import Clock, FakeClock, RealClock
from informers.errors import (
    NAMESPACE_TERMINATING_CAUSE,
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    ServerError,
    StatusCause,
    TooManyRequests,
    Unauthorized,
)
from informers.frozen import FrozenDict, FrozenList, freeze, thaw
from informers.kubeconfig import close_api_client, load_configuration, new_api_client
from informers.multi_namespace import ALL_NAMESPACES, MultiNamespaceInformer
from informers.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_controller_rate_limiter,
)
from informers.reflector import Reflector, ReflectorStats, Transform
from informers.resource import ListerWatcher, Object, Resource, ResourceClient
from informers.retry_after import RetryAfterPolicy
from informers.shared_informer import EventHandler, FuncHandler, SharedInformer
from informers.store import (
    CONTROLLER_UID_INDEX,
    NAMESPACE_INDEX,
    DeletedFinalStateUnknown,
    Indexer,
    ObjectKey,
    controller_uid_index,
    namespace_index,
    object_key,
    split_key,
)
from informers.throttle import QpsThrottle
from informers.workqueue import (
    LOW_PRIORITY,
    NORMAL_PRIORITY,
    DelayingQueue,
    NoopQueueMetrics,
    QueueMetrics,
    RateLimitingQueue,
    WorkQueue,
)

__all__ = [
    "ALL_NAMESPACES",
    "APPLY_PATCH",
    "CONTROLLER_UID_INDEX",
    "JSON",
    "LOW_PRIORITY",
    "MERGE_PATCH",
    "NAMESPACE_INDEX",
    "NAMESPACE_TERMINATING_CAUSE",
    "NORMAL_PRIORITY",
    "ApiError",
    "BadRequest",
    "BucketRateLimiter",
    "Clock",
    "Conflict",
    "ConnectionFailed",
    "DelayingQueue",
    "DeletedFinalStateUnknown",
    "EventHandler",
    "FakeClock",
    "Forbidden",
    "FrozenDict",
    "FrozenList",
    "FuncHandler",
    "Gone",
    "Indexer",
    "Invalid",
    "ItemExponentialFailureRateLimiter",
    "JitteredBackoff",
    "ListerWatcher",
    "MaxOfRateLimiter",
    "MultiNamespaceInformer",
    "NoopQueueMetrics",
    "NotFound",
    "Object",
    "ObjectKey",
    "QpsThrottle",
    "QueueMetrics",
    "RateLimiter",
    "RateLimitingQueue",
    "RealClock",
    "Reflector",
    "ReflectorStats",
    "RequestInfo",
    "RequestObserver",
    "Resource",
    "ResourceClient",
    "RestClient",
    "RetryAfterPolicy",
    "ServerError",
    "SharedInformer",
    "StatusCause",
    "Throttle",
    "TooManyRequests",
    "Transform",
    "Unauthorized",
    "WatchEvent",
    "WatchStream",
    "WorkQueue",
    "close_api_client",
    "controller_uid_index",
    "default_controller_rate_limiter",
    "freeze",
    "load_configuration",
    "namespace_index",
    "new_api_client",
    "object_key",
    "split_key",
    "thaw",
]
