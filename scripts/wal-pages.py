#!/usr/bin/env python3
"""Which tables and indexes the commits in a Taskyard WAL wrote, page by page.

Usage: scripts/wal-pages.py DATA_DIR

Run it on a copy of a data directory taken while (or right after) the server was under
load, e.g. after a SIGKILL: `cp -r taskyard-data /tmp/copy && scripts/wal-pages.py /tmp/copy`.
It reads the frame headers of `taskyard.db-wal` (the frames of the current WAL generation,
up to its last commit), then opens the copy with Python's sqlite3 (which applies the WAL)
and maps each page number to its B-tree with the `dbstat` virtual table. It prints the
commits and frames found, and for each B-tree (interior pages separately) how many frames
it took and how many per commit. Pages freed and reused during the WAL's life are counted
under their current owner, which is close enough for finding what a commit writes.
"""

import collections
import sqlite3
import struct
import sys


def commits_in_wal(path):
    """Page numbers of the frames of each commit of the WAL's current generation."""
    wal = open(path, "rb").read()
    if len(wal) < 32:
        return []
    _magic, _version, page_size, _seq, salt1, salt2, _c1, _c2 = struct.unpack(">8I", wal[:32])
    commits, current, off = [], [], 32
    while off + 24 + page_size <= len(wal):
        page, commit_size, s1, s2 = struct.unpack(">4I", wal[off : off + 16])
        if (s1, s2) != (salt1, salt2):
            break  # a frame of an earlier generation: the current one ends here
        current.append(page)
        if commit_size:
            commits.append(current)
            current = []
        off += 24 + page_size
    return commits


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data = sys.argv[1].rstrip("/")
    commits = commits_in_wal(data + "/taskyard.db-wal")
    if not commits:
        sys.exit("no committed frames in the WAL")
    con = sqlite3.connect(data + "/taskyard.db")
    owner = {
        page: name if kind == "leaf" else f"{name} ({kind})"
        for name, page, kind in con.execute("SELECT name, pageno, pagetype FROM dbstat")
    }
    frames = sum(len(c) for c in commits)
    print(f"commits {len(commits)}, frames {frames}, frames per commit {frames / len(commits):.1f}")
    by_tree = collections.Counter(owner.get(p, "?") for c in commits for p in c)
    for tree, n in by_tree.most_common():
        print(f"{n:8d} {100 * n / frames:5.1f}% {n / len(commits):6.2f}/commit  {tree}")


if __name__ == "__main__":
    main()
