#!/usr/bin/env python3
"""Run one cell against a running kernel with jupyter_client, the way a notebook does.

Usage: refusal_client.py CONNECTION_FILE [--code CODE] [--shutdown] [--timeout SECONDS]

Prints what the kernel answered:
    reply status: <status of execute_reply>
    ename: <ename of execute_reply>
    --- output ---
    <error tracebacks and stream text published on iopub>
Exits 0 when an execute_reply arrived, 1 when the kernel did not answer in time.
With --shutdown it then asks the kernel to shut down and waits for the reply.
"""

import argparse
import sys
from queue import Empty

from jupyter_client import BlockingKernelClient


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("connection_file")
    p.add_argument("--code", default="print(1)")
    p.add_argument("--shutdown", action="store_true")
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args()

    kc = BlockingKernelClient()
    kc.load_connection_file(args.connection_file)
    kc.start_channels()
    try:
        try:
            kc.wait_for_ready(timeout=args.timeout)
        except RuntimeError as e:
            print(f"refusal_client: kernel not ready: {e}", file=sys.stderr)
            return 1

        msg_id = kc.execute(args.code)
        reply = None
        while reply is None:
            try:
                msg = kc.get_shell_msg(timeout=args.timeout)
            except Empty:
                print("refusal_client: no execute_reply", file=sys.stderr)
                return 1
            if msg["parent_header"].get("msg_id") == msg_id:
                reply = msg

        output = []
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=args.timeout)
            except Empty:
                print("refusal_client: no idle status on iopub", file=sys.stderr)
                return 1
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                output.append("\n".join(content["traceback"]))
            elif kind == "stream":
                output.append(content["text"])
            elif kind == "status" and content["execution_state"] == "idle":
                break

        print(f"reply status: {reply['content']['status']}")
        print(f"ename: {reply['content'].get('ename', '')}")
        print("--- output ---")
        print("\n".join(output))

        if args.shutdown:
            shutdown_id = kc.shutdown()
            while True:
                try:
                    msg = kc.get_control_msg(timeout=args.timeout)
                except Empty:
                    print("refusal_client: no shutdown_reply", file=sys.stderr)
                    return 1
                if msg["parent_header"].get("msg_id") == shutdown_id:
                    break
        return 0
    finally:
        kc.stop_channels()


if __name__ == "__main__":
    sys.exit(main())
