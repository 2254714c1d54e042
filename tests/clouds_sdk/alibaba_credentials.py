"""alibabacloud-credentials (PyPI): the ECS RAM role provider, for tests/clouds_sdk.rs. Its
address is fixed (100.100.100.200:80, no override): the test runs it in a network namespace that
holds that address on loopback, where the guard listens. ALIBABA_CLOUD_IMDSV1_DISABLED=true keeps a
failed token PUT from falling back to tokenless reads.

Steps:
  credentials  Client(Config(type="ecs_ram_role")).get_credential(): PUT /latest/api/token, GET
               /latest/meta-data/ram/security-credentials/ (the role), then .../<role>
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import Report, need  # noqa: E402

client = need("alibabacloud_credentials.client", "alibabacloud-credentials")
models = need("alibabacloud_credentials.models", "alibabacloud-credentials")

try:
    from importlib.metadata import version

    VERSION = version("alibabacloud-credentials")
except Exception:  # noqa: BLE001
    VERSION = "unknown"

report = Report(**{"alibabacloud-credentials": VERSION})


def credentials():
    got = client.Client(models.Config(type="ecs_ram_role")).get_credential()
    return {
        "access_key_id": got.access_key_id,
        "has_secret": bool(got.access_key_secret),
        "security_token": got.security_token,
        "type": got.type,
        "provider": got.provider_name,
    }


report.step("credentials", credentials)
report.done()
