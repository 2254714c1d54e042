"""azure-identity (PyPI): ManagedIdentityCredential on Azure's IMDS, for tests/clouds_sdk.rs.
Pointed at the guard by AZURE_POD_IDENTITY_AUTHORITY_HOST=http://HOST:PORT (with
IDENTITY_ENDPOINT, MSI_ENDPOINT and IMDS_ENDPOINT unset, so the IMDS credential is the one used;
the override also skips its probe).

Steps:
  vault        get_token("https://vault.azure.net/.default"): GET
               /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net
  management   get_token("https://management.azure.com/.default"): another resource
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import Report, need  # noqa: E402

identity = need("azure.identity", "azure-identity")
import azure.identity._version  # noqa: E402

report = Report(**{"azure-identity": azure.identity._version.VERSION})
credential = identity.ManagedIdentityCredential()


def get(scope):
    def action():
        token = credential.get_token(scope)
        return {
            "token": token.token,
            "expires_on": token.expires_on,
            "expires_in": token.expires_on - int(time.time()),
        }

    return action


report.step("vault", get("https://vault.azure.net/.default"))
report.step("management", get("https://management.azure.com/.default"))
report.done()
