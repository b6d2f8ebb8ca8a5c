"""The worker's broker credentials for faust, built from the same settings as every other client's."""

from __future__ import annotations

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from streams.client.security import sasl_login, tls_context
from streams.settings import Settings


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """faust's ``broker_credentials`` for the settings' security protocol (None for PLAINTEXT).

    faust derives the protocol from the credentials: SASL credentials with a TLS context are SASL_SSL, without
    one SASL_PLAINTEXT; TLS credentials alone are SSL.
    """
    context = tls_context(settings)
    login = sasl_login(settings)
    if login is not None:
        username, password = login
        return SASLCredentials(
            username=username, password=password, ssl_context=context, mechanism=settings.kafka_sasl_mechanism
        )
    if context is not None:
        return SSLCredentials(context)
    return None
