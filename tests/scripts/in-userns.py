#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""Run a command as root in a new user namespace with the given id maps.

    in-userns.py UIDMAP GIDMAP CMD [ARG]...

UIDMAP and GIDMAP are "INSIDE:OUTSIDE:COUNT[,...]". The maps are written
by this process (root may map any range), so unlike unshare(1)
--map-users it needs no /etc/subuid entry and no newuidmap.
"""
import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000


def proc_map(spec):
    return "".join("%s %s %s\n" % tuple(e.split(":")) for e in spec.split(","))


def main():
    uids, gids, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.close(r2)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWUSER) != 0:
            sys.exit("unshare: %s" % os.strerror(ctypes.get_errno()))
        os.write(w2, b"u")
        os.read(r, 1)  # maps written
        # As a container's first process: root inside (we came in as
        # an id the maps may not have).
        os.setgroups([])
        os.setgid(0)
        os.setuid(0)
        os.execvp(cmd[0], cmd)
    os.close(r)
    os.close(w2)
    os.read(r2, 1)
    for name, spec in (("uid_map", uids), ("gid_map", gids)):
        with open("/proc/%d/%s" % (pid, name), "w") as f:
            f.write(proc_map(spec))
    os.write(w, b"g")
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


main()
