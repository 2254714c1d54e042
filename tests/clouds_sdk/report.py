"""What every client script of tests/clouds_sdk.rs reports, one JSON object on stdout.

  {"client": {"name": "version", ...}, "steps": {"NAME": STEP, ...}}

where each STEP is {"ok": VALUE, "seconds": S} or {"error": "Type: message", "type": "Type",
"seconds": S}: S is the time the step took, imports excluded. A missing package is reported as
{"missing": "what to install"} and nothing else.
"""

import json
import sys
import time
import traceback


def say(value):
    sys.stdout.write(json.dumps(value, default=str) + "\n")
    sys.stdout.flush()


def need(module, pip_name):
    """Imports `module`, or reports what to install and exits."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        say({"missing": f"{pip_name} (python3 -m pip install {pip_name}; tests/run.sh does): {e}"})
        sys.exit(0)


class Report:
    def __init__(self, **versions):
        self.out = {"client": versions, "steps": {}}

    def step(self, name, action):
        """Runs `action()`, records its value or its exception, and gives the value (or None)."""
        started = time.monotonic()
        try:
            value = action()
        except BaseException as e:  # noqa: BLE001 - every failure is reported, none escapes
            self.out["steps"][name] = {
                "error": f"{type(e).__name__}: {e}",
                "type": type(e).__name__,
                "chain": chain(e),
                "seconds": time.monotonic() - started,
                "trace": traceback.format_exc(limit=4),
            }
            return None
        self.out["steps"][name] = {"ok": value, "seconds": time.monotonic() - started}
        return value

    def done(self):
        say(self.out)


def chain(e):
    """The messages of `e` and of the exceptions it was raised from, outermost first."""
    seen = []
    while e is not None and len(seen) < 6:
        seen.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    return seen
