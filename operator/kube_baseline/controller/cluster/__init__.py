"""The only package that speaks HTTP to the API server: aiohttp, raw JSON dicts, no client models.

`Cluster` takes plain `Credentials` (handlers builds them from Kopf's login result). Every write
carries `fieldManager=kube-baseline`, is bounded by one asyncio.Semaphore created with the
client, and is retried after HTTP 429 honouring Retry-After. Functions are named by their I/O:
`patch_*`, `create_*`, `replace_*`, `delete_*`, `post_event`.

- transport.py: the only module that imports aiohttp: credentials and TLS, the session, retried
  writes, reads, paged LISTs, one watch stream.
- watch.py: list-and-watch forever over a collection (workload kinds, Nodes).
- client.py: `Cluster`, the calls the operator makes.

Import from here: `from kube_baseline.controller.cluster import Cluster, Credentials, ApiError`.
"""

from kube_baseline.controller.cluster.client import Cluster
from kube_baseline.controller.cluster.transport import (
    APPLY,
    LIST_PAGE,
    MAX_RETRIES,
    MERGE,
    STRATEGIC_MERGE,
    WATCH_SECONDS,
    ApiError,
    Credentials,
    GoneError,
    build_ssl_context,
    resource_version_of,
)

__all__ = [
    "APPLY",
    "LIST_PAGE",
    "MAX_RETRIES",
    "MERGE",
    "STRATEGIC_MERGE",
    "WATCH_SECONDS",
    "ApiError",
    "Cluster",
    "Credentials",
    "GoneError",
    "build_ssl_context",
    "resource_version_of",
]
