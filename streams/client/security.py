"""How every Kafka client of profilestream reaches a secured cluster: TLS and SASL options from the settings.

One function turns the settings into client options. The option names are the same in kafka-python (the SDK,
the subscriber, the admin step) and in aiokafka (the worker's lag monitor and the backfill), so both take the
same dictionary; the worker hands the same TLS context and SASL values to faust as broker credentials
(:mod:`streams.worker.broker_auth`).
"""

from __future__ import annotations

import ssl
from typing import Any

from streams.client.secret_files import SecretConfigError, resolve_secret
from streams.settings import Settings

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


def uses_tls(settings: Settings) -> bool:
    """Whether the connections to the brokers are encrypted."""
    return settings.kafka_security_protocol in TLS_PROTOCOLS


def uses_sasl(settings: Settings) -> bool:
    """Whether the clients authenticate with SASL."""
    return settings.kafka_security_protocol in SASL_PROTOCOLS


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the broker connections (None for the plaintext protocols).

    The brokers' certificates are checked against ``kafka_ssl_cafile`` (or the system's CAs); a client
    certificate and key are presented when both are given (mutual TLS).
    """
    if not uses_tls(settings):
        _refuse_unused(settings, ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"))
        return None
    if (settings.kafka_ssl_certfile is None) != (settings.kafka_ssl_keyfile is None):
        raise SecretConfigError("set kafka_ssl_certfile and kafka_ssl_keyfile together (mutual TLS needs both)")
    try:
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile is not None else None
        )
        if settings.kafka_ssl_certfile is not None and settings.kafka_ssl_keyfile is not None:
            context.load_cert_chain(str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile))
    except (OSError, ssl.SSLError) as exc:
        raise SecretConfigError(f"cannot load the Kafka TLS files: {exc}") from None
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def sasl_login(settings: Settings) -> tuple[str, str] | None:
    """(user name, password) for the SASL protocols, None for the others."""
    if not uses_sasl(settings):
        _refuse_unused(settings, ("kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_password_file"))
        return None
    password = resolve_secret("kafka_sasl_password", settings.kafka_sasl_password, settings.kafka_sasl_password_file)
    if not settings.kafka_sasl_username or password is None:
        raise SecretConfigError(
            f"security protocol {settings.kafka_security_protocol} needs kafka_sasl_username and "
            "kafka_sasl_password (or kafka_sasl_password_file)"
        )
    return settings.kafka_sasl_username, password


def _refuse_unused(settings: Settings, names: tuple[str, ...]) -> None:
    """Raise SecretConfigError when any of ``names`` is set although the security protocol does not use it: a
    login or a CA file given under PLAINTEXT was dropped without a word, and the client connected in the clear."""
    given = [name for name in names if getattr(settings, name) is not None]
    if given:
        raise SecretConfigError(
            f"{', '.join(given)} set, but kafka_security_protocol {settings.kafka_security_protocol} does not use "
            "them: set the protocol that does (SASL_SSL, SASL_PLAINTEXT or SSL) or unset them"
        )


def security_warnings(settings: Settings) -> list[str]:
    """What the settings allow but an operator should know: a password sent in the clear, a broker certificate
    accepted for any host name. Allowed (a test cluster, a private network), said once at start."""
    warnings = []
    if settings.kafka_security_protocol == "SASL_PLAINTEXT" and settings.kafka_sasl_mechanism == "PLAIN":
        warnings.append("SASL PLAIN over SASL_PLAINTEXT sends the Kafka password unencrypted: use SASL_SSL or SCRAM")
    if uses_tls(settings) and not settings.kafka_ssl_check_hostname:
        warnings.append(
            "kafka_ssl_check_hostname is off: any host with a certificate from the trusted CAs can pose as the broker"
        )
    return warnings


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Security options for a kafka-python or aiokafka client; empty for a plaintext cluster (their default).
    Raises SecretConfigError for a login or TLS file the protocol would not use."""
    context = tls_context(settings)
    login = sasl_login(settings)
    if settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if context is not None:
        options["ssl_context"] = context
    if login is not None:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"], options["sasl_plain_password"] = login
    return options
