"""oci (PyPI): the instance principal signer, which reads the instance's identity from OCI's
metadata server, for tests/clouds_sdk.rs. Pointed at the guard by OCI_METADATA_BASE_URL
(http://HOST:PORT/opc/v2). The signer then trades that identity for a security token at the auth
service: its federation_endpoint argument points it at a stand-in served by this script on
loopback, which answers with a token and records what it was sent (so the test sees that the
certificates read through the guard are the ones presented).

Steps:
  signer   InstancePrincipalsSecurityTokenSigner(federation_endpoint=..): GET identity/cert.pem,
           identity/key.pem, identity/intermediate.pem, instance/region (all with
           Authorization: Bearer Oracle), then the federation request
"""

import base64
import http.server
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import Report, need  # noqa: E402

oci = need("oci", "oci")
signers = need("oci.auth.signers", "oci")
serialization = need("cryptography.hazmat.primitives.serialization", "cryptography")

report = Report(oci=oci.__version__)
federation_requests = []


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Federation(http.server.BaseHTTPRequestHandler):
    """The auth service's /v1/x509, as far as the signer needs it: a JWT with iat and exp."""

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        federation_requests.append(
            {"path": self.path, "authorization": self.headers.get("Authorization"), "body": json.loads(body)}
        )
        now = int(time.time())
        claims = {"iat": now, "exp": now + 3600, "sub": "ocid1.instance.stand-in"}
        token = ".".join(
            [b64url(b'{"alg":"none","typ":"JWT"}'), b64url(json.dumps(claims).encode()), b64url(b"sig")]
        )
        answer = json.dumps({"token": token}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Federation)
threading.Thread(target=server.serve_forever, daemon=True).start()
FEDERATION = f"http://127.0.0.1:{server.server_address[1]}/v1/x509"


def text(pem):
    return pem.decode("ascii") if isinstance(pem, bytes) else pem


def signer():
    s = signers.InstancePrincipalsSecurityTokenSigner(federation_endpoint=FEDERATION)
    leaf = s.leaf_certificate_retriever
    cert = leaf.get_certificate_as_certificate()
    key = leaf.get_private_key()
    key_matches = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    intermediate = s.intermediate_certificate_retriever.get_certificate_as_certificate()
    sent = federation_requests[-1]["body"] if federation_requests else {}
    return {
        "metadata_base_url": s.METADATA_URL_BASE,
        "region": s.region,
        "tenancy_id": s.tenancy_id,
        "leaf_subject": cert.subject.rfc4514_string(),
        "intermediate_subject": intermediate.subject.rfc4514_string(),
        "key_matches_certificate": key_matches,
        "security_token": s.federation_client.get_security_token(),
        "federation_requests": len(federation_requests),
        "presented_leaf_is_served_leaf": bool(sent)
        and sent.get("certificate", "") in text(leaf.get_certificate_raw()).replace("\n", ""),
        "presented_intermediates": len(sent.get("intermediateCertificates", [])),
    }


report.step("signer", signer)
report.done()
