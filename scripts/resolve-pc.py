#!/usr/bin/env python3
"""resolve-pc.py MAPS PC [ADDR]: name the object, offset and nearest symbol of
a crash's program counter, from a /proc/PID/maps snapshot (used by
scripts/gpu-check.sh to read Go's crash reports of native code)."""
import subprocess
import sys


def mapping(maps, addr):
    for line in open(maps):
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        if lo <= addr < hi:
            return lo, int(f[2], 16), (f[5] if len(f) > 5 else "[anon]"), f[1]
    return None


def symbol(path, fileoff):
    vaddr = fileoff
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True).stdout
    for l in out.splitlines():
        f = l.split()
        if f and f[0] == "LOAD":
            po, pv, fs = int(f[1], 16), int(f[2], 16), int(f[4], 16)
            if po <= fileoff < po + fs:
                vaddr = fileoff - po + pv
    for args in (["nm", "-C", "--defined-only", path], ["nm", "-D", "-C", "--defined-only", path]):
        best = None
        for l in subprocess.run(args, capture_output=True, text=True).stdout.splitlines():
            f = l.split(None, 2)
            if len(f) < 3 or f[1] not in "tTwWiI":
                continue
            try:
                a = int(f[0], 16)
            except ValueError:
                continue
            if a <= vaddr and (best is None or a > best[0]):
                best = (a, f[2])
        if best:
            return "%s+%#x (vaddr %#x)" % (best[1], vaddr - best[0], vaddr)
    return "no symbol (vaddr %#x)" % vaddr


maps, pc = sys.argv[1], int(sys.argv[2], 16)
m = mapping(maps, pc)
if m is None:
    print("pc %#x: not mapped when the snapshot was taken" % pc)
else:
    lo, off, path, perm = m
    print("pc %#x: %s (%s) file offset %#x: %s" % (pc, path, perm, pc - lo + off, symbol(path, pc - lo + off) if path.startswith("/") else ""))
if len(sys.argv) > 3:
    addr = int(sys.argv[3], 16)
    m = mapping(maps, addr)
    print("fault address %#x: %s" % (addr, "%s (%s)" % (m[2], m[3]) if m else "not mapped when the snapshot was taken"))
