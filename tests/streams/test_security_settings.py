"""TLS and SASL settings: one set of options for every client, secrets from files, never shown."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from pydantic import SecretStr

from bench.procs import settings_env
from streams.cli.main import EXIT_CONFIG, build_parser, configure_logging, main
from streams.client.secret_files import SecretConfigError, resolve_secret
from streams.client.security import kafka_client_options, security_warnings, tls_context
from streams.settings import load_settings
from streams.worker.broker_auth import broker_credentials

PASSWORD = "s3cret-pa55word"


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate and key made with openssl, serving as CA file and as client certificate."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _password_file(tmp_path: Path) -> Path:
    path = tmp_path / "kafka-password"
    path.write_text(f"  {PASSWORD}\n", encoding="utf-8")
    return path


def test_plaintext_adds_no_option_and_no_credentials() -> None:
    settings = load_settings()
    assert kafka_client_options(settings) == {}
    assert broker_credentials(settings) is None


def test_sasl_ssl_options_carry_the_login_and_a_verifying_tls_context(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    settings = load_settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="worker",
        kafka_sasl_password_file=_password_file(tmp_path),
        kafka_ssl_cafile=cert,
    )
    options = kafka_client_options(settings)
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "worker",
        "sasl_plain_password": PASSWORD,
    }
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(ca.get("subject") == ((("commonName", "localhost"),),) for ca in context.get_ca_certs())

    credentials = broker_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-256")
    assert (credentials.username, credentials.password) == ("worker", PASSWORD)
    assert PASSWORD not in repr(credentials)


def test_sasl_plaintext_has_no_tls_context() -> None:
    settings = load_settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password=SecretStr(PASSWORD),
    )
    assert "ssl_context" not in kafka_client_options(settings)
    credentials = broker_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"


@pytest.mark.parametrize(
    ("protocol", "given"),
    [
        ("PLAINTEXT", {"kafka_sasl_username": "worker", "kafka_sasl_password": "pw"}),
        ("PLAINTEXT", {"kafka_ssl_cafile": "/nonexistent/ca.pem"}),
        ("SSL", {"kafka_sasl_password": "pw"}),
        ("SASL_PLAINTEXT", {"kafka_ssl_cafile": "/nonexistent/ca.pem", "kafka_sasl_username": "w"}),
    ],
)
def test_a_login_or_tls_file_the_protocol_does_not_use_is_refused(protocol: str, given: dict[str, str]) -> None:
    # Dropped without a word, a password given for a PLAINTEXT cluster meant connecting in the clear, unnoticed.
    settings = load_settings(kafka_security_protocol=protocol, kafka_sasl_password_file=None, **given)
    with pytest.raises(SecretConfigError, match=f"kafka_security_protocol {protocol} does not use") as refused:
        kafka_client_options(settings)
    assert "pw" not in str(refused.value)
    with pytest.raises(SecretConfigError):
        broker_credentials(settings)


def test_a_password_in_the_clear_or_an_unchecked_host_name_is_warned_about() -> None:
    plain = load_settings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u"
    )
    assert [w for w in security_warnings(plain) if "unencrypted" in w]
    unchecked = load_settings(kafka_security_protocol="SSL", kafka_ssl_check_hostname=False)
    assert [w for w in security_warnings(unchecked) if "check_hostname" in w]
    scram = load_settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="u"
    )
    assert security_warnings(scram) == [] and security_warnings(load_settings()) == []


def test_mutual_tls_loads_the_client_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    settings = load_settings(
        kafka_security_protocol="SSL", kafka_ssl_cafile=cert, kafka_ssl_certfile=cert, kafka_ssl_keyfile=key
    )
    assert kafka_client_options(settings)["security_protocol"] == "SSL"
    assert isinstance(broker_credentials(settings), SSLCredentials)
    with pytest.raises(SecretConfigError, match="together"):
        tls_context(settings.model_copy(update={"kafka_ssl_keyfile": None}))
    with pytest.raises(SecretConfigError, match="TLS files"):
        tls_context(settings.model_copy(update={"kafka_ssl_keyfile": tmp_path / "missing.pem"}))


def test_sasl_without_a_login_is_refused_with_the_settings_to_set(tmp_path: Path) -> None:
    with pytest.raises(SecretConfigError, match="kafka_sasl_username"):
        kafka_client_options(load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_password=SecretStr("x")))
    with pytest.raises(SecretConfigError, match="not both"):
        kafka_client_options(
            load_settings(
                kafka_security_protocol="SASL_PLAINTEXT",
                kafka_sasl_username="u",
                kafka_sasl_password=SecretStr(PASSWORD),
                kafka_sasl_password_file=_password_file(tmp_path),
            )
        )


def test_a_secret_file_that_cannot_be_used_is_named_but_never_quoted(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(SecretConfigError, match="empty"):
        resolve_secret("lookup_token", None, empty)
    with pytest.raises(SecretConfigError, match="cannot read lookup_token_file"):
        resolve_secret("lookup_token", None, tmp_path / "absent")
    assert resolve_secret("lookup_token", None, _password_file(tmp_path)) == PASSWORD
    assert resolve_secret("lookup_token", None, None) is None
    binary = tmp_path / "binary"
    binary.write_bytes(b"0123456789\xc3(secret")
    with pytest.raises(SecretConfigError, match="is not UTF-8 text") as raised:
        resolve_secret("pseudonym_key", None, binary)
    assert "0xc3" not in str(raised.value) and "position" not in str(raised.value)


def test_a_secret_gives_the_same_value_from_a_variable_as_from_a_file(tmp_path: Path) -> None:
    # A key injected as a variable often ends in a newline; its pseudonyms must equal the file's, or an erasure
    # request from a tool configured the other way names a pseudonym no state has.
    from_file = resolve_secret("pseudonym_key", None, _password_file(tmp_path))
    assert resolve_secret("pseudonym_key", SecretStr(PASSWORD + "\n"), None) == from_file == PASSWORD


def test_the_cli_never_logs_the_sasl_password_at_debug_level(tmp_path: Path) -> None:
    # kafka-python's admin client logs its configuration, password included, at debug level.
    import logging

    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaConfigurationError

    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    caught: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: caught.append(record.getMessage())  # type: ignore[method-assign]
    try:
        root.setLevel(logging.DEBUG)  # what basicConfig does in a CLI process (here pytest's handlers stop it)
        configure_logging("debug")
        root.addHandler(handler)
        settings = load_settings(
            kafka_bootstrap="127.0.0.1:9",
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="svc",
            kafka_sasl_password_file=_password_file(tmp_path),
        )
        logging.getLogger("tests.debug_probe").debug("a debug line of another logger")  # debug lines get through
        # The client logs its configuration first, then refuses the unknown key: no connection is tried.
        with pytest.raises(KafkaConfigurationError):
            KafkaAdminClient(bootstrap_servers="127.0.0.1:9", not_a_setting=1, **kafka_client_options(settings))
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        logging.getLogger("kafka.admin.client").setLevel(logging.NOTSET)
    assert "a debug line of another logger" in caught
    assert not [line for line in caught if PASSWORD in line]


def test_the_pseudonym_command_refuses_abbreviated_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pseudonym", "--pseudonym-key", "0123456789abcdef", "user-1"])
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "--kafka-sasl-password", "S3CRET-VALUE"],
        ["--kafka-sasl-password", "S3CRET-VALUE", "worker"],
        ["produce", "--lookup-token=S3CRET-VALUE", "x.jsonl"],
        ["pseudonym", "--pseudonym-key", "S3CRET-VALUE", "alice"],
    ],
)
def test_a_secret_typed_after_a_flag_that_does_not_exist_is_not_repeated(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse refused the flag and printed the value after it ("unrecognized arguments: ... S3CRET", or
    # "invalid choice: 'S3CRET'"), into a terminal or a CI log.
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert "S3CRET" not in capsys.readouterr().err


def test_secrets_are_masked_in_the_settings_but_reach_a_child_process() -> None:
    settings = load_settings(kafka_sasl_password=SecretStr(PASSWORD), lookup_token=SecretStr("tok-123456"))
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
    env = settings_env(settings)
    assert env["PROFILESTREAM_KAFKA_SASL_PASSWORD"] == PASSWORD
    assert env["PROFILESTREAM_LOOKUP_TOKEN"] == "tok-123456"


@pytest.mark.parametrize("command", [["worker"], ["topics", "create"], ["produce", "f"], ["erase", "u"],
                                     ["profiles", "tail"], ["profiles", "versions"], ["demo-traffic"]])  # fmt: skip
def test_every_kafka_command_takes_the_security_flags_but_no_password_flag(command: list[str]) -> None:
    flags = ["--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-username", "u",
             "--kafka-sasl-password-file", "pw", "--kafka-ssl-cafile", "ca.pem"]  # fmt: skip
    args = build_parser().parse_args([*command, *flags])
    assert (args.kafka_security_protocol, args.kafka_sasl_username) == ("SASL_SSL", "u")
    assert args.kafka_sasl_password_file == Path("pw")
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--kafka-sasl-password", PASSWORD])


def test_a_command_with_an_unusable_secret_stops_with_one_line_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-password"
    code = main(["topics", "create", "--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-username", "u",
                 "--kafka-sasl-password-file", str(missing)])  # fmt: skip
    assert code == EXIT_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"profilestream: configuration: cannot read kafka_sasl_password_file {missing}: No such file or directory"
    ]
