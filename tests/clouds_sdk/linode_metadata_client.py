"""linode-metadata (PyPI): MetadataClient, for tests/clouds_sdk.rs. (Named so, not
linode_metadata.py, which would shadow the package: the script's own directory is first on
sys.path.) Its address is http://169.254.169.254/v1 unless it is given another as `base_url` (its
documented argument): LINODE_BASE_URL, when set, is passed so; otherwise the client's own default
is used, and the test runs it in a network namespace that holds 169.254.169.254 on loopback, where
the guard listens.

The client manages its token itself (managed_token=True, the default): before a read it asks
PUT /v1/token with Metadata-Token-Expiry-Seconds (managed_token_expiry_seconds, 3600 unless told)
when it has no token or, by its own clock, the one it has has expired; every read then carries
Metadata-Token. A status from 400 to 599 raises ApiError (its message "STATUS: " and the
`reason`s of a Linode error body; the body itself on `.json`). Every answer the client gets is
recorded by an httpx response hook on the httpx.Client it is given (its documented `client`
argument).

Steps (each a new client, so each begins with its own token request):
  instance   get_instance(): id, label, region, type, specs, and the token it used
  network    get_network(): interfaces, IPv4 and IPv6 addresses
  user_data  get_user_data(): the decoded user data (the test's rule does not allow it)
  refresh    managed_token_expiry_seconds=1: get_instance(), then past the token's age
             get_instance() again, which asks for a new token first
  long_token generate_token(expiry_seconds=86400), then get_instance() with that token on a
             client that does not manage its own (managed_token=False, set_token())

A failed step records, besides the exception, its `status` and `body` (ApiError's .status and
.json). The report's `answers` lists every answer the clients got: method, path, status, the
Metadata-Token-Expiry-Seconds the request asked for (`sent_ttl`), whether it carried a
Metadata-Token (`sent_token`), and the answer's Metadata-Token-Expiry-Seconds (`ttl`) when it has
one.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import Report, need  # noqa: E402

client_module = need("linode_metadata", "linode-metadata")
error_module = need("linode_metadata.objects.error", "linode-metadata")
httpx = need("httpx", "linode-metadata")

try:
    from importlib.metadata import version

    VERSIONS = {"linode-metadata": version("linode-metadata"), "httpx": version("httpx")}
except Exception:  # noqa: BLE001
    VERSIONS = {"linode-metadata": "unknown"}

report = Report(**VERSIONS)
BASE_URL = os.environ.get("LINODE_BASE_URL")
TTL_HEADER = "metadata-token-expiry-seconds"
answers = []


def on_response(response):
    answer = {
        "method": response.request.method,
        "path": response.request.url.path,
        "status": response.status_code,
        "sent_ttl": response.request.headers.get(TTL_HEADER),
        "sent_token": "metadata-token" in response.request.headers,
    }
    if TTL_HEADER in response.headers:
        answer["ttl"] = response.headers[TTL_HEADER]
    answers.append(answer)


def metadata_client(**kwargs):
    if BASE_URL:
        kwargs["base_url"] = BASE_URL
    http = httpx.Client(event_hooks={"response": [on_response]})
    return client_module.MetadataClient(client=http, **kwargs)


def text(token):
    return token.decode() if isinstance(token, bytes) else token


def step(name, action):
    """report.step, with an ApiError's status and body recorded beside it."""
    caught = []

    def run():
        try:
            return action()
        except error_module.ApiError as e:
            caught.append(e)
            raise

    value = report.step(name, run)
    if caught:
        report.out["steps"][name]["status"] = caught[0].status
        report.out["steps"][name]["body"] = caught[0].json
    return value


def instance():
    client = metadata_client()
    got = client.get_instance()
    return {
        "id": got.id,
        "label": got.label,
        "region": got.region,
        "type": got.type,
        "vcpus": got.specs.vcpus,
        "token": text(client.token),
    }


def network():
    got = metadata_client().get_network()
    return {
        "purposes": [i.purpose for i in got.interfaces],
        "ipv4_public": got.ipv4.public,
        "ipv4_private": got.ipv4.private,
        "ipv6_slaac": got.ipv6.slaac,
        "ipv6_link_local": got.ipv6.link_local,
    }


def user_data():
    return metadata_client().get_user_data()


def refresh():
    client = metadata_client(managed_token_expiry_seconds=1)
    first_id = client.get_instance().id
    first = text(client.token)
    time.sleep(1.2)
    second_id = client.get_instance().id
    return {"ids": [first_id, second_id], "tokens": [first, text(client.token)]}


def long_token():
    token = metadata_client().generate_token(expiry_seconds=86400)
    client = metadata_client(managed_token=False)
    client.set_token(token.token)
    return {
        "expiry_seconds": token.expiry_seconds,
        "token": text(token.token),
        "id": client.get_instance().id,
    }


step("instance", instance)
step("network", network)
step("user_data", user_data)
step("refresh", refresh)
step("long_token", long_token)
report.out["answers"] = answers
report.done()
