"""Publishing the local domains' own transport security: the MTA-STS policy served over HTTPS
for ``mta-sts.DOMAIN`` (fetched back by mailroom's own MTA-STS client, which checks it as it
checks anyone's), also by the web UI without its credentials, and the DNS records to publish
(``_mta-sts``, ``_smtp._tls``, TLSA of the listeners' key)."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mailroom.app import Mailroom
from mailroom.config import Config, ConfigError, load_config
from mailroom.delivery.mtasts import fetch_policy, parse_policy, parse_txt
from mailroom.delivery.tlsrpt import parse_tlsrpt_record
from mailroom.dns_commands import listener_certificate
from mailroom.resolver import Resolver
from mailroom.tls_publish import tls_dns_records
from tests.transport.conftest import DNSPeers
from tests.transport.tlspeers import TestCA

CONFIG = """
hostname = "mx.pub.plain.test"
data = "{data}"
tls = "files"
tls_cert = "{cert}"
tls_key = "{key}"
web = "127.0.0.1:0"
web_auth = "admin:a long password"
log_level = "warning"
domains = ["pub.plain.test", "other.plain.test"]

[[listeners]]
address = "127.0.0.1:0"
role = "mx"

[mta_sts]
mode = "{mode}"
mx = ["mx.pub.plain.test", "*.backup.plain.test"]
max_age = "1d"
listen = "127.0.0.1:0"

[tls_reporting]
rua = ["mailto:tlsrpt@pub.plain.test", "https://reports.pub.plain.test/v1"]
"""


def write_config(tmp_path: Path, test_ca: TestCA, mode: str = "enforce") -> Path:
    names = ["mx.pub.plain.test", "mta-sts.pub.plain.test", "mta-sts.other.plain.test"]
    issued = test_ca.issue("pub", names)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "mailroom.toml"
    path.write_text(
        CONFIG.format(data=tmp_path / "data", cert=issued.cert_path, key=issued.key_path, mode=mode)
    )
    return path


def test_the_policy_is_served_and_passes_mailroom_s_own_client(
    tmp_path: Path, dns_peers: DNSPeers, test_ca: TestCA
) -> None:
    dns_peers.set("mta-sts.pub.plain.test", {"A": ["127.0.0.1"]})
    config = load_config(write_config(tmp_path, test_ca))

    async def main() -> None:
        server = Mailroom(config)
        await server.start()
        try:
            site = server.policy_site
            assert site is not None
            # A sender that trusts the test CA, checking the certificate as RFC 8461 says.
            verifying = ssl.create_default_context(cafile=str(test_ca.path))
            text = await fetch_policy(
                "pub.plain.test",
                resolver=Resolver([dns_peers.address]),
                ssl_context=verifying,
                port=site.port,
            )
            policy = parse_policy(text)
            assert (policy.mode, policy.mx, policy.max_age) == (
                "enforce",
                ("mx.pub.plain.test", "*.backup.plain.test"),
                86400,
            )
            # The web UI answers it too, to anyone, for mta-sts.DOMAIN only.
            assert server.web is not None and server.web.address is not None
            host, port = server.web.address
            url = f"http://{host}:{port}"
            async with aiohttp.ClientSession() as session:
                async with session.get(
                    f"{url}/.well-known/mta-sts.txt",
                    headers={"Host": "mta-sts.other.plain.test"},
                ) as response:
                    assert response.status == 200
                    assert response.content_type == "text/plain"
                    assert parse_policy(await response.text()) == policy
                async with session.get(
                    f"{url}/.well-known/mta-sts.txt", headers={"Host": "mta-sts.evil.test"}
                ) as response:
                    assert response.status == 404
                async with session.get(f"{url}/api/v1/messages") as response:
                    assert response.status == 401  # the rest still wants credentials
                # The exemption is for reading the policy only: anything else at that path
                # meets the host guard and the credentials like every other path.
                async with session.post(f"{url}/.well-known/mta-sts.txt") as response:
                    assert response.status == 401
                async with session.post(
                    f"{url}/.well-known/mta-sts.txt",
                    headers={"Host": "mta-sts.other.plain.test"},
                ) as response:
                    assert response.status == 403
        finally:
            await server.stop()

    asyncio.run(main())


def _records(config: Config) -> list[str]:
    assert config.mail is not None
    return tls_dns_records(
        config.mail.published, hostname=config.hostname, certificate=listener_certificate(config)
    )


def test_the_records_to_publish(tmp_path: Path, test_ca: TestCA) -> None:
    config = load_config(write_config(tmp_path, test_ca))
    records = _records(config)
    txt = {line.split(" IN ")[0]: line.split(" IN ")[1] for line in records if " IN " in line}
    sts = txt["_mta-sts.pub.plain.test."]
    assert sts.startswith('TXT "') and parse_txt([sts[5:-1]]) is not None
    assert txt["_mta-sts.other.plain.test."] == sts  # one policy for the local domains
    assert parse_tlsrpt_record([txt["_smtp._tls.pub.plain.test."][5:-1]]) == [
        "mailto:tlsrpt@pub.plain.test",
        "https://reports.pub.plain.test/v1",
    ]
    # DANE-EE of the listeners' key, for the MX host (not the wildcard pattern).
    from cryptography import x509

    assert config.tls_cert is not None
    cert = x509.load_pem_x509_certificate(config.tls_cert.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert txt["_25._tcp.mx.pub.plain.test."] == f"TLSA 3 1 1 {hashlib.sha256(spki).hexdigest()}"
    assert not any("backup" in name for name in txt)
    # Another policy, another id.
    testing = load_config(write_config(tmp_path / "t", test_ca, mode="testing"))
    other = [line for line in _records(testing) if line.startswith("_mta-sts.pub")]
    assert other and other[0] != f"_mta-sts.pub.plain.test. IN {sts}"


def test_dns_records_prints_them_with_the_authentication_records(
    tmp_path: Path, test_ca: TestCA
) -> None:
    """``mailroom dns-records``: the email authentication records, then these; the MTA-STS and
    TLS-RPT placeholders of the first part give way to the records the settings make."""
    path = write_config(tmp_path, test_ca)
    result = subprocess.run(
        [sys.executable, "-m", "mailroom", "dns-records", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("_dmarc.pub.plain.test. ") for line in lines)  # authentication
    assert "; ---- transport security ([mta_sts], [tls_reporting], TLSA)" in lines
    config = load_config(path)
    for record in _records(config):
        assert record in lines
    # One _mta-sts and one _smtp._tls record per domain: the configured ones, no placeholder.
    for domain in ("pub.plain.test", "other.plain.test"):
        assert sum(line.startswith(f"_mta-sts.{domain}. ") for line in lines) == 1
        assert sum(line.startswith(f"_smtp._tls.{domain}. ") for line in lines) == 1
    assert "placeholder" not in result.stdout
    assert any(line.startswith("_25._tcp.mx.pub.plain.test. IN TLSA 3 1 1 ") for line in lines)


def test_bad_publishing_settings_are_named(tmp_path: Path, test_ca: TestCA) -> None:
    path = write_config(tmp_path, test_ca, mode="sometimes")
    with pytest.raises(ConfigError, match=r"mailroom.toml:\d+: \[mta_sts\]: mode is enforce"):
        load_config(path)
    path.write_text(path.read_text().replace("sometimes", "enforce").replace("https://", "ftp://"))
    with pytest.raises(ConfigError, match=r"\[tls_reporting\]: rua 'ftp://"):
        load_config(path)
