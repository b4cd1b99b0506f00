#!/usr/bin/env python3
"""Runs a program where pidfd_open(2) fails with EPERM, as under a seccomp filter that does
not allow it (an older systemd's SystemCallFilter, a container runtime's profile): the
broker must then fall back to polling its sessions' processes.

Usage: without_pidfd.py PROGRAM [ARG...]

Installs a seccomp filter on itself (no privilege needed after PR_SET_NO_NEW_PRIVS) and
execs PROGRAM, which inherits the filter. Linux only; 434 is pidfd_open's number on every
architecture (the syscall table is shared from 5.1 on).
"""

import ctypes
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM = 1
NR_PIDFD_OPEN = 434


def stmt(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: without_pidfd.py PROGRAM [ARG...]")
    program = b"".join([
        stmt(0x20, 0),                         # A = seccomp_data.nr
        stmt(0x15, NR_PIDFD_OPEN, 0, 1),       # if A == pidfd_open: next, else skip one
        stmt(0x06, SECCOMP_RET_ERRNO | EPERM),  # return EPERM
        stmt(0x06, SECCOMP_RET_ALLOW),          # allow everything else
    ])
    buf = ctypes.create_string_buffer(program, len(program))
    prog = struct.pack("HxxxxxxP", len(program) // 8, ctypes.addressof(buf))
    prog_buf = ctypes.create_string_buffer(prog, len(prog))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        sys.exit(f"without_pidfd: PR_SET_NO_NEW_PRIVS failed: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog_buf), 0, 0) != 0:
        sys.exit(f"without_pidfd: installing the seccomp filter failed: {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
