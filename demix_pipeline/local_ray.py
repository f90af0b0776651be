"""A local Ray that talks to nothing but this machine's loopback and unix sockets.

What Ray 2.60 does on its own when `ray.init()` starts a local cluster, and the switch for each:

- It picks the node's address by "connecting" a UDP socket to 8.8.8.8:53 and then runs every server
  (GCS, raylet, workers, agents) on the machine's external address. `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`
  (`ray_constants.ENABLE_RAY_CLUSTER`, read when ray is imported, in every Ray process) makes Ray a
  single-machine cluster: the node address is the loopback (`get_localhost_ip()`), so the gRPC servers
  bind to 127.0.0.1 and all traffic between the processes stays on it.
- Its dashboard process starts even with `include_dashboard=False` (it then loads only `UsageStatsHead`), and
  that module asks the cloud-metadata endpoints which cloud it is on (`usage_lib.get_cloud_from_metadata_requests`:
  169.254.169.254 for Azure and AWS, a DNS query and HTTP for metadata.google.internal) *before* it looks at
  `RAY_USAGE_STATS_ENABLED`. No environment variable turns that off, so the dashboard process alone gets an HTTP
  proxy on a closed loopback port (`http_proxy=http://127.0.0.1:9`, loopback exempt through `no_proxy`): the
  probes end at once with "connection refused" on 127.0.0.1, without a DNS query, and report "unknown".
- `RAY_USAGE_STATS_ENABLED=0` (demix_pipeline/_env.py) keeps the usage report itself off.

None of this applies when demix joins a cluster (`run.address` or `RAY_ADDRESS`): the cluster's own settings hold.
tests/test_network.py runs `demix run` under `strace -f -e trace=connect` and fails on any other address.
"""
from __future__ import annotations

import contextlib
import os

LOCAL_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# a port nothing listens on (discard): the dashboard's HTTP requests fail on the loopback
DEAD_PROXY = "http://127.0.0.1:9"
DASHBOARD_ENV = {"http_proxy": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY, "https_proxy": DEAD_PROXY,
                 "HTTPS_PROXY": DEAD_PROXY, "no_proxy": "localhost,127.0.0.1,::1", "NO_PROXY": "localhost,127.0.0.1,::1"}


@contextlib.contextmanager
def local_ray_env():
    """The loopback switch while Ray starts its processes (they keep it); this process's environment and
    ray's constant are as before afterwards, so a later `ray start` or cluster connection is not affected.
    A user's own value of the variable is kept."""
    saved = {name: os.environ.get(name) for name in LOCAL_RAY_ENV}
    for name, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(name, value)
    import ray._private.ray_constants as constants  # read the variable at import: re-read it the way ray does

    saved_constant = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"].lower() in ("1", "true")
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_constant
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def dashboard_without_network():
    """While Ray starts its processes, the dashboard process alone gets `DASHBOARD_ENV`."""
    from ray._private import ray_constants, services

    original = getattr(services, "start_ray_process", None)
    if original is None:  # a Ray without this function: nothing to wrap (tests/test_network.py would tell)
        yield
        return

    def start_ray_process(command, process_type, *args, **kwargs):
        if process_type == ray_constants.PROCESS_TYPE_DASHBOARD:
            kwargs["env_updates"] = {**DASHBOARD_ENV, **(kwargs.get("env_updates") or {})}
        return original(command, process_type, *args, **kwargs)

    services.start_ray_process = start_ray_process
    try:
        yield
    finally:
        services.start_ray_process = original


def init_local_ray(**kwargs) -> None:
    """`ray.init(**kwargs)` for a local Ray bound to 127.0.0.1, with no dashboard UI and no metadata probes."""
    import ray

    with local_ray_env(), dashboard_without_network():
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **kwargs)
