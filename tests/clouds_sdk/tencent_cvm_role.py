"""tencentcloud-sdk-python-common (PyPI): the CVM role credential, for tests/clouds_sdk.rs. Its
address is fixed (http://metadata.tencentyun.com/latest/meta-data/, no override): the test runs it
in a network namespace that holds 169.254.0.23 on loopback, where the guard listens, and whose
hosts file (/etc/netns/NAME/hosts, which `ip netns exec` puts in place of /etc/hosts) names
metadata.tencentyun.com there.

The credential never raises on a failed read: it swallows the error (get_role_name() returns
None, update_credential() passes) and gives no keys. DefaultCredentialProvider then goes on to the
TKE OIDC provider, which raises when its environment is not set.

Steps:
  resolve        socket.gethostbyname("metadata.tencentyun.com")
  role           CVMRoleCredential().get_role_name(): GET cam/security-credentials/
  credentials    CVMRoleCredential().get_credential_info() (a new credential, so the role is
                 asked for again), then GET cam/security-credentials/<role>; and get_credential()
  default_chain  DefaultCredentialProvider().get_credential(): environment, profile (HOME is
                 empty), the CVM role, then TKE OIDC
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import Report, need  # noqa: E402

credential = need("tencentcloud.common.credential", "tencentcloud-sdk-python-common")

try:
    from importlib.metadata import version

    VERSION = version("tencentcloud-sdk-python-common")
except Exception:  # noqa: BLE001
    VERSION = "unknown"

report = Report(**{"tencentcloud-sdk-python-common": VERSION})
HOST = "metadata.tencentyun.com"


def credentials():
    cred = credential.CVMRoleCredential()
    secret_id, secret_key, token = cred.get_credential_info()
    return {
        "role": cred.role,
        "secret_id": secret_id,
        "secret_key": secret_key,
        "token": token,
        "expired_ts": cred._expired_ts,  # noqa: SLF001 - what the credential read as ExpiredTime
        "get_credential": cred.get_credential() is cred,
    }


def default_chain():
    cred = credential.DefaultCredentialProvider().get_credential()
    return {
        "class": type(cred).__name__,
        "secret_id": cred.secret_id,
        "token": cred.token,
    }


report.step("resolve", lambda: socket.gethostbyname(HOST))
report.step("role", lambda: credential.CVMRoleCredential().get_role_name())
report.step("credentials", credentials)
report.step("default_chain", default_chain)
report.done()
