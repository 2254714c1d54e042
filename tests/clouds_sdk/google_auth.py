"""google-auth (PyPI) on GCE's metadata server, as an application on a VM would use it, for
tests/clouds_sdk.rs. Pointed at the guard by its own documented overrides: GCE_METADATA_HOST and
GCE_METADATA_IP (read at import), GCE_METADATA_MTLS_MODE=none.

Steps:
  default    google.auth.default(): the availability ping (GET / on GCE_METADATA_IP), then the
             project id; gives the credentials' class and the project
  token      compute_engine.Credentials().refresh(): the service account's info
             (service-accounts/default/?recursive=true), then its access token
  universe   the credentials' universe domain (universe/universe-domain; 404 means the default)
  id_token   compute_engine.IDTokenCredentials(.., use_metadata_identity_endpoint=True).refresh():
             an ID token from service-accounts/default/identity?audience=..&format=full
  id_token_other_audience   the same for another audience
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import Report, need  # noqa: E402

google_auth = need("google.auth", "google-auth")
need("requests", "requests")
compute_engine = need("google.auth.compute_engine", "google-auth")
transport = need("google.auth.transport.requests", "google-auth")
import google.auth.jwt  # noqa: E402

AUDIENCE = "https://service.example"
OTHER_AUDIENCE = "https://other.example"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]

report = Report(**{"google-auth": google_auth.__version__})
request = transport.Request()


def default():
    credentials, project = google_auth.default(scopes=SCOPES)
    return {"class": type(credentials).__name__, "project": project}


def token():
    credentials = compute_engine.Credentials()
    credentials.refresh(request)
    return {
        "token": credentials.token,
        "expiry": credentials.expiry.isoformat(),
        "service_account": credentials.service_account_email,
        "valid": credentials.valid,
    }


def universe():
    credentials = compute_engine.Credentials()
    return credentials.universe_domain


def id_token(audience):
    def action():
        credentials = compute_engine.IDTokenCredentials(
            request, audience, use_metadata_identity_endpoint=True
        )
        credentials.refresh(request)
        claims = google.auth.jwt.decode(credentials.token, verify=False)
        return {"token": credentials.token, "claims": claims, "valid": credentials.valid}

    return action


report.step("default", default)
report.step("token", token)
report.step("universe", universe)
report.step("id_token", id_token(AUDIENCE))
report.step("id_token_other_audience", id_token(OTHER_AUDIENCE))
report.done()
