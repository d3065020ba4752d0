"""What the portal reads from its environment. It has no database and no broker: only the
services' URLs, the identity provider, and the key that signs its session cookie."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from quartier_shared.services import ACTORS, CONFERENCES, NOTIFICATIONS, PORTAL_PORT
from quartier_shared.web import PageSettings


class Settings(PageSettings):
    service_name: str = "portal"
    host: str = "0.0.0.0"
    # PORTAL_PORT (make run), else PORT (the image, as every service's)
    portal_port: int = Field(default=PORTAL_PORT, validation_alias=AliasChoices("PORTAL_PORT", "PORT"))
    log_level: str = "INFO"
    allowed_hosts: str = "localhost,127.0.0.1"

    actors_url: str = f"http://127.0.0.1:{ACTORS.port}"
    conferences_url: str = f"http://127.0.0.1:{CONFERENCES.port}"
    notifications_url: str = f"http://127.0.0.1:{NOTIFICATIONS.port}"  # a draft's preview and test mail
    api_timeout_seconds: float = 10.0

    # The identity provider (OIDC): its issuer URL (discovery at /.well-known/openid-configuration),
    # the audience the access token must name and this client's id (a public client: PKCE, no secret).
    auth_issuer: str | None = None
    auth_audience: str = "quartier"
    auth_jwks_url: str | None = None
    # Where the portal itself fetches the discovery document when the issuer's public address is not
    # reachable from it (compose: http://keycloak:8080/...); None: the issuer's own.
    oidc_discovery_url: str | None = None
    oidc_client_id: str = "quartier"
    # The address browsers reach the portal at (the redirect URI is derived from it); None: local.
    portal_public_url: str | None = None
    # Signs the session cookie; None: a random key per start (sessions end with the process).
    session_secret: SecretStr | None = None
    session_minutes: int = 480

    @property
    def public_url(self) -> str:
        return (self.portal_public_url or f"http://127.0.0.1:{self.portal_port}").rstrip("/")

    @property
    def allowed_host_list(self) -> list[str]:
        return [host.strip() for host in self.allowed_hosts.split(",") if host.strip()]
