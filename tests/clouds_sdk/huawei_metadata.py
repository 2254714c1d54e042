"""huaweicloudsdkcore (PyPI): the metadata credential provider, for tests/clouds_sdk.rs. Its
address is fixed (http://169.254.169.254, no override): the test runs it in a network namespace
that holds that address on loopback, where the guard listens.

The provider's accessor (MetadataAccessor) first asks PUT /meta-data/latest/api/token
(X-Metadata-Token-Ttl-Seconds); on 404, 405 or 503 it reads without a token, on any other
refusal it raises. Then GET /openstack/latest/securitykey (with X-Metadata-Token when it got
one); a status of 400 or more raises ClientRequestException.

Steps:
  basic   MetadataCredentialProvider.get_basic_credential_metadata_provider().get_credentials():
          BasicCredentials with the agency's AK/SK and security token
  global  MetadataCredentialProvider.get_global_credential_metadata_provider().get_credentials():
          GlobalCredentials, the same keys read again
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import Report, need  # noqa: E402

provider = need("huaweicloudsdkcore.auth.provider", "huaweicloudsdkcore")

try:
    from importlib.metadata import version

    VERSION = version("huaweicloudsdkcore")
except Exception:  # noqa: BLE001
    VERSION = "unknown"

report = Report(huaweicloudsdkcore=VERSION)
Provider = provider.MetadataCredentialProvider


def keys(credentials):
    return {
        "class": type(credentials).__name__,
        "ak": credentials.ak,
        "sk": credentials.sk,
        "security_token": credentials.security_token,
        "expires_at": credentials._expired_at,  # noqa: SLF001 - what it read as expires_at
    }


report.step(
    "basic", lambda: keys(Provider.get_basic_credential_metadata_provider().get_credentials())
)
report.step(
    "global", lambda: keys(Provider.get_global_credential_metadata_provider().get_credentials())
)
report.done()
