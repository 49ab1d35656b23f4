"""The public surface of imsdk_server.access is deliberate: this test fails when it drifts."""

from __future__ import annotations

import imsdk_server.access as access

EXPECTED = {
    "TRANSITIONS",
    "VIOLATIONS",
    "AccessConfig",
    "AccessConnection",
    "AccessError",
    "AccessServer",
    "Action",
    "AuthUnavailable",
    "Authenticate",
    "AuthenticationFailed",
    "Backend",
    "BackendNotReady",
    "BackendTimeout",
    "Closed",
    "CoreContext",
    "EventPublisher",
    "Forward",
    "Identity",
    "Input",
    "LinkBackend",
    "LinkRoutes",
    "LocalTokenVerifier",
    "NoBackend",
    "RemoteTokenVerifier",
    "RoutingError",
    "RoutingTable",
    "State",
    "SyncTokenVerifier",
    "TokenRouter",
    "TokenVerifier",
}


def test_exported_names() -> None:
    assert set(access.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(access, name), name
