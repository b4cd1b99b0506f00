"""Starts one kernel as the user running this program, the way JupyterHub's local
spawner does (the kernel manager itself runs as the user, so the connection file is the
user's), runs cells in it, and prints the results as one JSON line.

Usage (as the user, with the users' virtualenv):
    python user_kernel_driver.py < request.json
request: {"kernel_name": NAME, "kernel_dirs": [DIR], "cells": [CODE...], "timeout": S}
answer:  {"kernel_pid": PID, "cells": [{"stdout", "stderr", "error", "traceback"}...]}
Kernel start failures are reported as {"start_error": "..."}.
"""

import json
import os
import sys

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager


def run_cell(kc, code, timeout):
    msg_id = kc.execute(code)
    out = {"stdout": "", "stderr": "", "error": "", "traceback": []}
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out["stdout" if content["name"] == "stdout" else "stderr"] += content["text"]
        elif kind == "error":
            out["error"] = f"{content['ename']}: {content['evalue']}"
            out["traceback"] = content.get("traceback", [])
        elif kind == "status" and content["execution_state"] == "idle":
            return out


def main():
    req = json.load(sys.stdin)
    timeout = req.get("timeout", 60)
    km = KernelManager(kernel_name=req["kernel_name"],
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=req["kernel_dirs"]))
    try:
        km.start_kernel(env=dict(os.environ))
    except Exception as e:  # noqa: BLE001 - reported to the test
        print(json.dumps({"start_error": f"{type(e).__name__}: {e}"}))
        return
    kc = km.client()
    kc.start_channels()
    result = {"kernel_pid": getattr(km.provisioner, "pid", None), "cells": []}
    try:
        kc.wait_for_ready(timeout=timeout)
        for code in req["cells"]:
            result["cells"].append(run_cell(kc, code, timeout))
    except Exception as e:  # noqa: BLE001 - reported to the test
        result["driver_error"] = f"{type(e).__name__}: {e}"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
