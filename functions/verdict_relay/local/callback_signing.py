"""Signs callbacks the way the providers do, for the simulator and the tests (never used by the receiver).

* Huawei: ``X-Auth-Signature`` = HMAC-SHA256(seed, create_time + job_id + request_id + seed), hex.
* Alibaba MNS HTTP push: RSA-SHA1 over ``METHOD\\nContent-MD5\\nContent-Type\\nDate\\n`` + sorted ``x-mns-*``
  headers + the request path, with the certificate's URL (base64) in ``x-mns-signing-cert-url``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any


def huawei_callback_signature(seed: str, payload: dict[str, Any]) -> str:
    message = f"{payload['create_time']}{payload['job_id']}{payload['request_id']}{seed}"
    return hmac.new(seed.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass
class MnsSigner:
    """An MNS-like signing identity: an RSA key and a self-signed certificate published at ``certificate_url``."""

    private_key: Any
    certificate_pem: bytes
    certificate_url: str = ""
    certificate_requests: list[str] = field(default_factory=list)
    """The path of every request the certificate server answered (it serves the certificate at any path)."""

    @classmethod
    def generate(cls, certificate_url: str = "") -> MnsSigner:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "verdict-relay local MNS")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate.public_bytes(serialization.Encoding.PEM), certificate_url)

    def serve_certificate(self) -> Callable[[], None]:
        """Publish the certificate over HTTP on 127.0.0.1 (sets ``certificate_url``); returns a stop function."""
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        pem = self.certificate_pem
        requests = self.certificate_requests

        class CertificateHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-pem-file")
                self.send_header("Content-Length", str(len(pem)))
                self.end_headers()
                self.wfile.write(pem)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), CertificateHandler)
        threading.Thread(target=server.serve_forever, name="mns-certificate", daemon=True).start()
        self.certificate_url = f"http://127.0.0.1:{server.server_address[1]}/x509_public_certificate.pem"

        def stop() -> None:
            server.shutdown()
            server.server_close()

        return stop

    def sign(
        self, path: str, body: bytes, content_type: str = "application/json", date: datetime | None = None
    ) -> dict[str, str]:
        """The headers MNS sends with a push of ``body`` to ``path`` (stage and query included)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        headers = {
            "Content-Type": content_type,
            "Content-MD5": base64.b64encode(hashlib.md5(body).hexdigest().encode()).decode(),  # noqa: S324 - MNS's format
            "Date": format_datetime(date or datetime.now(UTC), usegmt=True),
            "x-mns-version": "2015-06-06",
            "x-mns-request-id": hashlib.sha256(body).hexdigest()[:24],
            "x-mns-signing-cert-url": base64.b64encode(self.certificate_url.encode()).decode(),
        }
        mns = "".join(
            f"{k.lower()}:{v}\n" for k, v in sorted(headers.items()) if k.lower().startswith("x-mns-")
        )
        to_sign = f"POST\n{headers['Content-MD5']}\n{content_type}\n{headers['Date']}\n{mns}{path}"
        signature = self.private_key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - MNS's algorithm
        headers["Authorization"] = base64.b64encode(signature).decode()
        return headers


def mns_notification(job_id: str, state: str = "Success") -> bytes:
    """The JSON body MPS posts through an MNS topic when a media censor job ends."""
    return json.dumps({"Type": "MediaCensor", "JobId": job_id, "State": state}).encode()
