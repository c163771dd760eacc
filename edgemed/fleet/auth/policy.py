"""Who may do what: the fleet's permissions, its roles, and the permission every API route needs.

One table (``ROUTE_PERMISSIONS``) names the permission of every route: the guard
(``fleet/auth/guard.py``) looks the matched route up there, so a route nobody classified is
refused (fail closed) and a test checks that every route of the app is in the table.

Roles (a user has one; an API token has scopes, a subset of its role's permissions):

- ``administrator``: everything, including users, tokens and the audit trail;
- ``clinician``: patient-related results and alerts, acknowledging alerts, the ward view;
- ``biomedical-engineer``: devices, beds, model bundles and rollouts, fleet health (dead
  letters, metrics); no patient results;
- ``integration-client``: for API tokens of hospital systems: results, FHIR reads, the
  encounter mapping, metrics; never users, acknowledgements or the audit trail.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "PERMISSIONS",
    "PUBLIC_ROUTES",
    "ROLES",
    "ROUTE_PERMISSIONS",
    "UNAUDITED_READS",
    "permission_of",
]

PERMISSIONS: Final = frozenset(
    {
        "results:read",  # results and anything carrying them (patient-related)
        "alerts:read",
        "alerts:ack",
        "devices:read",  # devices, their events, models, beds and wards
        "devices:manage",  # wards and beds, device groups, bundles and rollouts
        "fleet:read",  # dead letters (payload previews)
        "metrics:read",
        "exports:read",  # FHIR reads
        "encounters:write",  # the encounter -> patient mapping
        "users:manage",  # users, sessions and API tokens of others
        "audit:read",
    }
)

ROLES: Final[dict[str, frozenset[str]]] = {
    "administrator": PERMISSIONS,
    "clinician": frozenset({"results:read", "alerts:read", "alerts:ack", "devices:read"}),
    "biomedical-engineer": frozenset(
        {"devices:read", "devices:manage", "fleet:read", "metrics:read", "alerts:read"}
    ),
    "integration-client": frozenset(
        {
            "results:read",
            "alerts:read",
            "devices:read",
            "exports:read",
            "encounters:write",
            "metrics:read",
        }
    ),
}

# Routes outside the guard: health says nothing about patients; login and logout carry their
# own checks (and are audited by their handlers); the dashboard's page is static; a device
# downloads a bundle with its rollout's own download token (fleet/rollouts/routes.py).
PUBLIC_ROUTES: Final = frozenset(
    {("GET", "/api/health"), ("POST", "/api/login"), ("POST", "/api/logout"), ("GET", "/"),
     ("GET", "/ota/bundles/{sha256}")}
)  # fmt: skip

# Allowed calls not written to the audit trail (refused ones are): the monitoring system's
# scrape, every 15 s, of figures with no patient data, which must also answer while the
# database is down (it reports the store as down).
UNAUDITED_READS: Final = frozenset({("GET", "/metrics")})

# (method, route template) -> permission. "self" routes need only a valid identity.
ROUTE_PERMISSIONS: Final[dict[tuple[str, str], str]] = {
    ("GET", "/api/me"): "self",
    ("POST", "/api/me/password"): "self",
    ("GET", "/api/devices"): "devices:read",
    ("GET", "/api/devices/{device_id}"): "devices:read",
    ("GET", "/api/devices/{device_id}/events"): "devices:read",
    ("GET", "/api/models"): "devices:read",
    ("GET", "/api/results"): "results:read",
    ("GET", "/api/dead-letters"): "fleet:read",
    ("GET", "/api/alerts"): "alerts:read",
    ("POST", "/api/alerts/{alert_id}/ack"): "alerts:ack",
    ("GET", "/api/events"): "results:read",
    ("GET", "/metrics"): "metrics:read",
    ("PUT", "/api/encounters/{ref}"): "encounters:write",
    ("GET", "/api/encounters/{ref}"): "encounters:write",
    ("DELETE", "/api/encounters/{ref}"): "encounters:write",
    ("GET", "/fhir/Observation"): "exports:read",
    ("GET", "/api/users"): "users:manage",
    ("POST", "/api/users"): "users:manage",
    ("PATCH", "/api/users/{username}"): "users:manage",
    ("DELETE", "/api/users/{username}/sessions"): "users:manage",
    ("GET", "/api/tokens"): "users:manage",
    ("POST", "/api/tokens"): "users:manage",
    ("DELETE", "/api/tokens/{token_id}"): "users:manage",
    ("GET", "/api/audit"): "audit:read",
    # Wards and beds (fleet/wards/): the ward view shows patients' latest results.
    ("GET", "/api/wards"): "devices:read",
    ("GET", "/api/wards/{ward_id}"): "devices:read",
    ("GET", "/api/wards/{ward_id}/view"): "results:read",
    ("PUT", "/api/wards/{ward_id}"): "devices:manage",
    ("DELETE", "/api/wards/{ward_id}"): "devices:manage",
    ("PUT", "/api/wards/{ward_id}/beds/{bed_id}"): "devices:manage",
    ("DELETE", "/api/wards/{ward_id}/beds/{bed_id}"): "devices:manage",
    ("PUT", "/api/wards/{ward_id}/beds/{bed_id}/devices/{device_id}"): "devices:manage",
    ("DELETE", "/api/wards/{ward_id}/beds/{bed_id}/devices/{device_id}"): "devices:manage",
    ("GET", "/api/devices/{device_id}/bed"): "devices:read",
    ("GET", "/api/ward-settings"): "devices:read",
    ("PUT", "/api/ward-settings"): "devices:manage",
    # Model bundles and rollouts (fleet/rollouts/).
    ("GET", "/api/bundles"): "devices:read",
    ("GET", "/api/bundles/{sha256}"): "devices:read",
    ("POST", "/api/bundles"): "devices:manage",
    ("GET", "/api/rollouts"): "devices:read",
    ("GET", "/api/rollouts/{rollout_id}"): "devices:read",
    ("POST", "/api/rollouts"): "devices:manage",
    ("POST", "/api/rollouts/{rollout_id}/{action}"): "devices:manage",
    ("GET", "/api/device-groups"): "devices:read",
    ("PUT", "/api/device-groups/{name}"): "devices:manage",
}


def permission_of(method: str, route: str) -> str | None:
    """The permission ``method route`` needs; None: the route is in no table (refused)."""
    return ROUTE_PERMISSIONS.get((method.upper(), route))
