"""botocore's own IMDS fetchers, driven one line at a time (for tests/sdk.rs).

Configured the way a botocore session configures them (the endpoint from
AWS_EC2_METADATA_SERVICE_ENDPOINT), and created once, so that the same fetchers
serve every command for the life of the process, as in a long-running program.
Commands on stdin, one JSON line per command on stdout:

  credentials   InstanceMetadataFetcher.retrieve_iam_role_credentials()
  region        InstanceMetadataRegionFetcher.retrieve_region()

The first line says whether botocore could be loaded, and which endpoint it uses.
"""

import json
import sys


def say(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


try:
    import botocore
    import botocore.session
    import botocore.utils
except ImportError as e:
    say({"error": f"botocore cannot be imported ({e}): install it with "
                  "`python3 -m pip install botocore` (tests/run.sh does)"})
    sys.exit(0)

session = botocore.session.get_session()
config = {
    "ec2_metadata_service_endpoint": session.get_config_variable("ec2_metadata_service_endpoint"),
    "ec2_metadata_service_endpoint_mode": botocore.utils.resolve_imds_endpoint_mode(session),
    "ec2_metadata_v1_disabled": session.get_config_variable("ec2_metadata_v1_disabled"),
}
credentials = botocore.utils.InstanceMetadataFetcher(
    timeout=2, num_attempts=2, user_agent=session.user_agent(), config=config
)
region = botocore.utils.InstanceMetadataRegionFetcher(
    timeout=2, num_attempts=2, user_agent=session.user_agent(), config=config
)
say({"botocore": botocore.__version__, "endpoint": credentials._base_url})

for line in sys.stdin:
    command = line.strip()
    if command == "credentials":
        got = credentials.retrieve_iam_role_credentials()
        say({"credentials": {
            "role_name": got.get("role_name"),
            "access_key": got.get("access_key"),
            "has_secret": bool(got.get("secret_key")),
            "has_token": bool(got.get("token")),
            "expiry_time": got.get("expiry_time"),
        } if got else None})
    elif command == "region":
        say({"region": region.retrieve_region()})
    else:
        say({"error": f"unknown command {command!r}"})
