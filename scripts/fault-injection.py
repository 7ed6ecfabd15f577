#!/usr/bin/env python3
"""Fault-injection suite for git-massgen.

Each case builds a fresh repository in a sealed environment, leaves uncommitted user
changes, runs `git-massgen run --test 'sh test.sh' --merge` with four shell agents (or
`git-massgen merge latest AGENT` after a completed run) and SIGKILLs the git-massgen
process (only that process) at a random instant or at a deterministic kill point
(MASSGEN_TEST_KILL_AT). Then it runs the recovery (status, sometimes merge, clean --all,
clean --all --force) and checks the invariants with real git:

  (a) the user's uncommitted changes (modified, staged, staged-new, deleted, untracked)
      are byte-identical, and `git status` lists exactly them;
  (b) the user's branch is unchanged, or its tree is exactly the base tree plus one
      candidate's complete changes (plus a second one when recovery merged another);
  (c) after `clean --all` (no --force), every file an agent finished writing is on its
      massgen/* branch (or on the user's branch, when that candidate was merged);
  (d) after `clean --all --force`: one worktree, git fsck clean, no massgen/* branch, no
      process carrying MASSGEN_RUN= of the case, no run directory under the worktree
      root, .trash purged within 5 s;
  (e) no panic, only documented exit codes, expected exit code per command.

Kinds: run-random (SIGKILL 0-3 s after start), run-phase (0-2.5 s after "worktrees
ready"), run-point (MASSGEN_TEST_KILL_AT), merge-kill (`merge latest` killed at a point or
0-60 ms), clean-kill (a killed run, then `clean --all` killed at 0-90 ms), run-nokill;
probes: dotgit-rm / dotgit-replace (an agent deletes or replaces its worktree's .git).
A further check, c-extra, flags a candidate branch holding changes its agent never made.
After a SIGKILL the harness waits (up to 5 s) for git-massgen's own git children, which
go on running, before it checks anything.

Escape cases check that `run --merge` refuses (exit 1, "breach") when an agent touches
the user's repository, and that a setsid'd late writer never writes after the run.

Usage: scripts/fault-injection.py [--seed N] [--minutes M] [--max-kills K] [--only KIND]
       [--case-seed S]
The binary is $MASSGEN_FAULT_BIN (default: target/debug/git-massgen, built with
`cargo build`); results go under $MASSGEN_FAULT_DIR (default: target/fault-injection):
results/<stamp>/summary.json, violations.txt, failing case dirs.
"""

import argparse
import ctypes
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.abspath(os.environ.get(
    "MASSGEN_FAULT_BIN", os.path.join(_HERE, "..", "target", "debug", "git-massgen")))
ROOT = os.path.abspath(os.environ.get(
    "MASSGEN_FAULT_DIR", os.path.join(_HERE, "..", "target", "fault-injection")))
DOCUMENTED_EXITS = {0, 1, 2, 3, 4, 130}
KILL_POINTS = ["run-staged", "worktrees-registered", "worktree-checked-out",
               "merge-committed", "merge-applied"]
AGENTS = ["a", "b", "c", "d"]


# --------------------------------------------------------------------------- utilities

def set_subreaper():
    """Orphans (agents of a killed git-massgen) are re-parented to us, and reaped by us:
    PID 1 of this machine does not reap zombies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def reap():
    """Reaps exited orphans; only called while no Popen of ours is outstanding."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def blob_id(data: bytes) -> str:
    h = hashlib.sha1()
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


class Case:
    """One test case: its directory, environment, command log and findings."""

    def __init__(self, root, name, seed):
        self.name = name
        self.seed = seed
        self.rng = random.Random(seed)
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.home = os.path.join(self.dir, "home")
        self.repo = os.path.join(self.dir, "repo")
        self.cache = os.path.join(self.dir, "cache")
        self.agents_dir = os.path.join(self.dir, "agents")
        self.ledger_dir = os.path.join(self.dir, "ledger")
        for d in (self.home, self.cache, self.agents_dir, self.ledger_dir,
                  os.path.join(self.dir, "state"), os.path.join(self.dir, "config")):
            os.makedirs(d)
        with open(os.path.join(self.home, ".gitconfig"), "w") as f:
            f.write("[user]\n\tname = Fuzz User\n\temail = fuzz@example.com\n"
                    "[init]\n\tdefaultBranch = main\n[gc]\n\tauto = 0\n")
        self.env = {
            "PATH": os.path.dirname(BIN) + ":/usr/local/bin:/usr/bin:/bin",
            "HOME": self.home,
            "XDG_CACHE_HOME": self.cache,
            "XDG_STATE_HOME": os.path.join(self.dir, "state"),
            "XDG_CONFIG_HOME": os.path.join(self.dir, "config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Fuzz User", "GIT_AUTHOR_EMAIL": "fuzz@example.com",
            "GIT_COMMITTER_NAME": "Fuzz User", "GIT_COMMITTER_EMAIL": "fuzz@example.com",
            "LC_ALL": "C", "TZ": "UTC", "NO_COLOR": "1",
        }
        self.log = []          # commands run, in order
        self.violations = []   # (invariant, message)
        self.notes = []
        self.kills = 0         # SIGKILLs of git-massgen that landed (harness or kill point)
        self.info = {"seed": seed, "name": name}

    # -- commands ---------------------------------------------------------------------
    def sh(self, argv, cwd=None, check=True, env_extra=None, input=None, timeout=120):
        env = dict(self.env)
        if env_extra:
            env.update(env_extra)
        t0 = time.time()
        p = subprocess.run(argv, cwd=cwd or self.repo, env=env, input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        reap()
        if check and p.returncode != 0:
            raise RuntimeError("command failed: %s\n%s" % (argv, p.stderr.decode(errors="replace")))
        return p

    def git(self, *args, check=True, cwd=None):
        return self.sh(["git"] + list(args), cwd=cwd, check=check)

    def massgen(self, args, label, env_extra=None, kill_after=None, timeout=120, kill_when=None):
        """Runs git-massgen; SIGKILLs that process only after `kill_after` seconds."""
        env = dict(self.env)
        if env_extra:
            env.update(env_extra)
        argv = [BIN] + args
        out_path = os.path.join(self.dir, "%02d-%s.stdout" % (len(self.log), label))
        err_path = os.path.join(self.dir, "%02d-%s.stderr" % (len(self.log), label))
        t0 = time.time()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen(argv, cwd=self.repo, env=env, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err)
            killed = False
            if kill_when is not None:
                # poll a condition, then kill `kill_after` seconds later
                deadline = time.time() + 30
                self.current_stderr = err_path
                while p.poll() is None and not kill_when() and time.time() < deadline:
                    time.sleep(0.01)
            if kill_after is not None:
                try:
                    p.wait(timeout=kill_after)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)   # the process only, not its group
                    killed = True
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                rc = p.wait()
                self.violate("e", "%s did not finish within %ss (killed by the harness)" % (label, timeout))
        survivors = []
        if killed or rc == -signal.SIGKILL:
            survivors = self.wait_children_in_repo()
        reap()
        dt = time.time() - t0
        stdout = open(out_path, "rb").read().decode(errors="replace")
        stderr = open(err_path, "rb").read().decode(errors="replace")
        rec = {"label": label, "argv": argv, "env_extra": env_extra or {},
               "rc": rc, "killed_by_harness": killed, "kill_after": kill_after,
               "seconds": round(dt, 3), "stdout": stdout[-4000:], "stderr": stderr[-4000:],
               "survivors": survivors}
        self.log.append(rec)
        if rc == -signal.SIGKILL:
            self.kills += 1
        self.check_output(rec)
        return rec

    def wait_children_in_repo(self, limit=5.0):
        """After a SIGKILL of git-massgen only, its git children (cwd = the user's repo) go
        on; wait for them (up to `limit` s) so that checks see a settled repository.
        Returns what was found alive at the first look."""
        first = None
        deadline = time.time() + limit
        while True:
            alive = []
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    if os.readlink("/proc/%s/cwd" % pid) != self.repo:
                        continue
                    stat = open("/proc/%s/stat" % pid).read()
                    if stat.rsplit(")", 1)[1].split()[0] == "Z":
                        continue
                    cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode(errors="replace").strip()
                except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
                    continue
                if "purge-trash" in cmd:
                    continue
                alive.append("%s %s" % (pid, cmd[:150]))
            if first is None:
                first = alive
            if not alive or time.time() > deadline:
                if alive:
                    self.notes.append("processes still in the repo %ss after a kill: %s" % (limit, alive))
                return first
            time.sleep(0.01)

    def check_output(self, rec):
        text = rec["stdout"] + rec["stderr"]
        if "panicked" in text or "RUST_BACKTRACE" in text:
            self.violate("e", "%s panicked: %s" % (rec["label"], text[-800:]))
        rc = rec["rc"]
        if rc < 0:
            sig = -rc
            if not (sig == signal.SIGKILL and (rec["killed_by_harness"] or rec["env_extra"].get("MASSGEN_TEST_KILL_AT"))):
                self.violate("e", "%s died of signal %d" % (rec["label"], sig))
        elif rc not in DOCUMENTED_EXITS:
            self.violate("e", "%s exited %d (undocumented): %s" % (rec["label"], rc, rec["stderr"][-600:]))

    def expect_rc(self, rec, allowed, inv="e"):
        if rec["rc"] not in allowed:
            self.violate(inv, "%s exited %s, expected one of %s; stderr: %s" % (
                rec["label"], rec["rc"], sorted(allowed), rec["stderr"][-1200:]))

    def violate(self, inv, msg):
        self.violations.append((inv, msg))

    # -- helpers ----------------------------------------------------------------------
    def rev(self, r):
        p = self.git("rev-parse", "-q", "--verify", r + "^{commit}", check=False)
        return p.stdout.decode().strip() if p.returncode == 0 else None

    def tree_entries(self, commit):
        """path -> (mode, sha) of every entry of commit's tree (recursive)."""
        out = self.git("ls-tree", "-r", "-z", "--full-tree", commit).stdout
        res = {}
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, path = rec.split(b"\t", 1)
            mode, typ, sha = meta.decode().split()
            res[path.decode("utf-8", "surrogateescape")] = (mode, sha)
        return res

    def branches(self, prefix="refs/heads/massgen/"):
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)", prefix).stdout.decode()
        res = {}
        for line in out.splitlines():
            if line.strip():
                ref, sha = line.split(" ", 1)
                res[ref] = sha.strip()
        return res


# --------------------------------------------------------------------------- repository

def build_repo(c: Case):
    rng = c.rng
    os.makedirs(c.repo)
    c.git("init", "-q", "-b", "main", c.repo, cwd=c.dir)
    n = rng.randint(300, 2000)
    dirs = [""]
    for i in range(rng.randint(5, 25)):
        parent = rng.choice(dirs)
        dirs.append(os.path.join(parent, "dir%d" % i))
    files = {}
    for i in range(n):
        d = rng.choice(dirs)
        path = os.path.join(d, "f%d.%s" % (i, rng.choice(["txt", "rs", "py", "md"])))
        if rng.random() < 0.04:
            data = rng.randbytes(rng.randint(10, 3000))
        else:
            data = "".join("file %d line %d %x\n" % (i, k, rng.getrandbits(32))
                           for k in range(rng.randint(1, 30))).encode()
        files[path] = data
    for path, data in files.items():
        full = os.path.join(c.repo, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        if rng.random() < 0.03:
            os.chmod(full, 0o755)
    with open(os.path.join(c.repo, ".gitignore"), "w") as f:
        f.write("*.log\nbuild/\n")
    os.symlink("f0.txt", os.path.join(c.repo, "link-to-f0"))
    test = rng.choice([
        "exit 0\n",
        "sleep 0.3\nexit 0\n",
        'if [ -e FAILMARK ]; then echo "1 passed, 1 failed"; exit 1; fi\necho "2 passed, 0 failed"\n',
        'sleep 0.2\nif [ -e FAILMARK ]; then exit 1; fi\nexit 0\n',
        # a test that leaves an artifact in the candidate's worktree (not ignored)
        'echo "test ran $$" > test-artifact.txt\nsleep 0.4\nexit 0\n',
    ])
    with open(os.path.join(c.repo, "test.sh"), "w") as f:
        f.write(test)
    c.git("add", "-A")
    c.git("commit", "-q", "-m", "base")
    c.base = c.rev("HEAD")
    c.base_entries = c.tree_entries(c.base)
    c.info["files"] = len(c.base_entries)


def make_dirty(c: Case):
    """Uncommitted user changes the agents never touch."""
    rng = c.rng
    regular = sorted(p for p, (m, _) in c.base_entries.items()
                     if m in ("100644", "100755") and p not in ("test.sh", ".gitignore"))
    picks = rng.sample(regular, 4)
    c.dirty = {"modified": picks[0], "staged": picks[1], "deleted": picks[2],
               "staged_mm": picks[3]}
    with open(os.path.join(c.repo, picks[0]), "ab") as f:
        f.write(b"user modification, not staged\n")
    with open(os.path.join(c.repo, picks[1]), "ab") as f:
        f.write(b"user change, staged\n")
    c.git("add", "--", picks[1])
    os.unlink(os.path.join(c.repo, picks[2]))
    with open(os.path.join(c.repo, picks[3]), "ab") as f:
        f.write(b"staged part\n")
    c.git("add", "--", picks[3])
    with open(os.path.join(c.repo, picks[3]), "ab") as f:
        f.write(b"unstaged part on top\n")
    with open(os.path.join(c.repo, "untracked-user.txt"), "wb") as f:
        f.write(b"user's untracked notes %d\n" % rng.getrandbits(40))
    os.makedirs(os.path.join(c.repo, "user-notes"))
    with open(os.path.join(c.repo, "user-notes", "todo.md"), "wb") as f:
        f.write(b"- untracked in a new directory\n")
    with open(os.path.join(c.repo, "staged-new.txt"), "wb") as f:
        f.write(b"a new file, staged\n")
    c.git("add", "--", "staged-new.txt")
    c.dirty_paths = set(c.dirty.values()) | {"untracked-user.txt", "user-notes/todo.md", "staged-new.txt"}
    c.user_snapshot = user_state(c)


def user_state(c: Case):
    """What must survive: work-tree bytes of dirty paths, their index entries, git status."""
    files = {}
    for p in sorted(c.dirty_paths):
        full = os.path.join(c.repo, p)
        files[p] = open(full, "rb").read() if os.path.lexists(full) else None
    idx = {}
    out = c.git("ls-files", "-s", "-z", "--", *sorted(c.dirty_paths)).stdout
    for rec in out.split(b"\0"):
        if rec:
            meta, path = rec.split(b"\t", 1)
            idx[path.decode()] = meta.decode()
    st = c.git("status", "--porcelain=v1", "-z", "--untracked-files=all").stdout
    return {"files": files, "index": idx, "status": sorted(x for x in st.split(b"\0") if x)}


def check_user_state(c: Case, when):
    now = user_state(c)
    before = c.user_snapshot
    for p, data in before["files"].items():
        if now["files"][p] != data:
            c.violate("a", "%s: user's %s changed (%s -> %s bytes)" % (
                when, p, None if data is None else len(data),
                None if now["files"][p] is None else len(now["files"][p])))
    if now["index"] != before["index"]:
        c.violate("a", "%s: index entries of the user's paths changed: %s -> %s" % (
            when, before["index"], now["index"]))
    if now["status"] != before["status"]:
        gone = [x.decode(errors="replace") for x in before["status"] if x not in now["status"]]
        new = [x.decode(errors="replace") for x in now["status"] if x not in before["status"]]
        c.violate("a", "%s: git status changed; missing %s; new %s" % (when, gone[:10], new[:10]))


# --------------------------------------------------------------------------- agents

class Op:
    def __init__(self, idx, kind, path=None, data=None, mode=None, secs=None, target=None):
        self.idx, self.kind, self.path, self.data = idx, kind, path, data
        self.mode, self.secs, self.target = mode, secs, target


def gen_agent(c: Case, name, profile):
    """Writes agents/<name>.sh and returns its list of ops.

    Each file op appends "I <idx>" to the agent's ledger before and "D <idx>" after it,
    so the harness knows which ops were complete when the agent stopped."""
    rng = c.rng
    ops = []
    used = set()
    regular = sorted(p for p, (m, _) in c.base_entries.items()
                     if m in ("100644", "100755") and p not in c.dirty_paths
                     and p not in (".gitignore",))
    n_ops = 0 if profile == "idle" else rng.randint(2, 9)
    total_sleep = 0.0
    k = 0
    for _ in range(n_ops):
        r = rng.random()
        if profile == "slow" and r < 0.35 or r < 0.12:
            s = round(rng.uniform(0.05, 0.9), 2)
            if total_sleep + s > 2.6:
                continue
            total_sleep += s
            ops.append(Op(len(ops), "sleep", secs=s))
            continue
        if profile == "committer" and r < 0.3 or r < 0.18:
            ops.append(Op(len(ops), "commit"))
            continue
        kind = rng.choices(["new", "newdir", "unicode", "big", "modify", "delete", "exec",
                            "symlink", "chmod", "failmark"],
                           [30, 12, 4, 8, 16, 12 if profile != "deleter" else 40, 4, 3, 3, 2])[0]
        k += 1
        if kind in ("new", "newdir", "unicode", "big", "exec", "symlink", "failmark"):
            if kind == "new":
                d = os.path.dirname(rng.choice(regular))
                path = os.path.join(d, "new_%s_%d.txt" % (name, k))
            elif kind == "newdir":
                path = "agent_%s/sub%d/out_%d.txt" % (name, rng.randint(0, 2), k)
            elif kind == "unicode":
                path = "ü dir %s/fichier été %d.txt" % (name, k)
            elif kind == "big":
                path = "agent_%s/big_%d.bin" % (name, k)
            elif kind == "exec":
                path = "agent_%s/tool_%d.sh" % (name, k)
            elif kind == "symlink":
                path = "agent_%s/link_%d" % (name, k)
            else:
                path = "FAILMARK"
            if path in used:
                continue
            used.add(path)
            if kind == "big":
                data = rng.randbytes(rng.randint(100_000, 1_500_000))
            else:
                data = ("%s wrote %s in case %s op %d %x\n" % (name, path, c.name, len(ops),
                                                             rng.getrandbits(48))).encode()
            if kind == "symlink":
                target = rng.choice(regular)
                ops.append(Op(len(ops), "symlink", path=path, data=target.encode(),
                              mode="120000", target=target))
            else:
                ops.append(Op(len(ops), "big" if kind == "big" else "write", path=path, data=data,
                              mode="100755" if kind == "exec" else "100644"))
        elif kind == "modify":
            cand = [p for p in regular if p not in used]
            path = rng.choice(cand)
            used.add(path)
            data = ("%s rewrote %s op %d %x\n" % (name, path, len(ops), rng.getrandbits(48))).encode()
            ops.append(Op(len(ops), "write", path=path, data=data, mode=c.base_entries[path][0]))
        elif kind == "chmod":
            cand = [p for p in regular if p not in used and c.base_entries[p][0] == "100644"]
            path = rng.choice(cand)
            used.add(path)
            ops.append(Op(len(ops), "chmod", path=path, mode="100755"))
        else:  # delete
            cand = [p for p in regular if p not in used]
            path = rng.choice(cand)
            used.add(path)
            ops.append(Op(len(ops), "delete", path=path))
    exit_code = rng.choice([0, 0, 0, 0, 1, 3])
    ledger = os.path.join(c.ledger_dir, name)
    blobs = os.path.join(c.agents_dir, name + ".blobs")
    os.makedirs(blobs)
    lines = ["#!/bin/sh", "umask 022", "L=%s" % shlex.quote(ledger)]
    for op in ops:
        q = shlex.quote(op.path) if op.path else None
        if op.kind == "sleep":
            lines.append("sleep %s" % op.secs)
            continue
        if op.kind == "commit":
            lines.append("git add -A >/dev/null 2>&1 && git commit -q --no-verify -m 'agent %s commit %d' >/dev/null 2>&1" % (name, op.idx))
            continue
        lines.append("echo 'I %d' >> \"$L\"" % op.idx)
        if op.kind in ("write", "big", "symlink"):
            d = os.path.dirname(op.path)
            if d:
                lines.append("mkdir -p %s" % shlex.quote(d))
        if op.kind == "write":
            src = os.path.join(blobs, "%d" % op.idx)
            with open(src, "wb") as f:
                f.write(op.data)
            lines.append("cat %s > %s" % (shlex.quote(src), q))
            if op.mode == "100755":
                lines.append("chmod 755 %s" % q)
        elif op.kind == "big":
            src = os.path.join(blobs, "%d" % op.idx)
            with open(src, "wb") as f:
                f.write(op.data)
            lines.append("cp %s %s" % (shlex.quote(src), q))
        elif op.kind == "symlink":
            lines.append("ln -s %s %s" % (shlex.quote(op.target), q))
        elif op.kind == "chmod":
            lines.append("chmod 755 %s" % q)
        elif op.kind == "delete":
            lines.append("rm -f %s" % q)
        lines.append("echo 'D %d' >> \"$L\"" % op.idx)
    lines.append("exit %d" % exit_code)
    script = os.path.join(c.agents_dir, name + ".sh")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"name": name, "profile": profile, "ops": ops, "exit": exit_code,
            "script": script, "ledger": ledger}


def ledger_state(agent):
    """(started, done) sets of op indexes."""
    started, done = set(), set()
    try:
        for line in open(agent["ledger"]):
            parts = line.split()
            if len(parts) == 2:
                (started if parts[0] == "I" else done).add(int(parts[1]))
    except FileNotFoundError:
        pass
    return started, done


def expected_entry(c, op):
    """The (mode, sha) a completed op leaves at op.path; None for a deletion."""
    if op.kind in ("write", "big"):
        return (op.mode, blob_id(op.data))
    if op.kind == "symlink":
        return ("120000", blob_id(op.data))
    if op.kind == "chmod":
        return ("100755", c.base_entries[op.path][1])
    if op.kind == "delete":
        return None
    raise ValueError(op.kind)


def agent_full_changes(c, agent):
    """path -> expected entry (None = deleted) after the agent ran all its ops."""
    ch = {}
    for op in agent["ops"]:
        if op.kind in ("sleep", "commit"):
            continue
        ch[op.path] = expected_entry(c, op)
    return ch


def apply_changes(entries, changes):
    out = dict(entries)
    for p, e in changes.items():
        if e is None:
            out.pop(p, None)
        else:
            out[p] = e
    return out


# --------------------------------------------------------------------------- checks

def proc_leftovers(c: Case):
    """Live (non-zombie) processes of this case that carry MASSGEN_RUN=."""
    marker = ("HOME=" + c.home).encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % pid).read()
            state = stat.rsplit(")", 1)[1].split()[0]
            if state == "Z":
                continue
            env = open("/proc/%s/environ" % pid, "rb").read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if marker in env and any(e.startswith(b"MASSGEN_RUN=") for e in env):
            try:
                cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except Exception:
                cmd = "?"
            found.append("%s %s" % (pid, cmd.strip()))
    return found


def run_id_like(name):
    return re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", name) is not None


def check_after_force(c: Case):
    """(d): after clean --all --force."""
    wl = c.git("worktree", "list", "--porcelain").stdout.decode()
    wts = [l for l in wl.splitlines() if l.startswith("worktree ")]
    if len(wts) != 1:
        c.violate("d", "git worktree list has %d worktrees: %s" % (len(wts), wts))
    prune = c.git("worktree", "prune", "--dry-run", "-v").stdout.decode() + \
        c.git("worktree", "prune", "--dry-run", "-v").stderr.decode()
    if prune.strip():
        c.violate("d", "git worktree prune --dry-run would prune: %s" % prune.strip()[:500])
    fsck = c.git("fsck", "--full", "--no-progress", check=False)
    bad = [l for l in (fsck.stdout + fsck.stderr).decode(errors="replace").splitlines()
           if l.strip() and not l.startswith("dangling ")]
    if fsck.returncode != 0 or bad:
        c.violate("d", "git fsck rc=%d: %s" % (fsck.returncode, bad[:10]))
    br = c.branches()
    if br:
        c.violate("d", "massgen branches left after clean --all --force: %s" % sorted(br))
    procs = proc_leftovers(c)
    if procs:
        c.violate("d", "processes with MASSGEN_RUN= left after clean --all --force: %s" % procs[:10])
        for p in procs:   # do not let them disturb later cases
            try:
                os.kill(int(p.split()[0]), signal.SIGKILL)
            except Exception:
                pass
    wroot = os.path.join(c.cache, "git-massgen", "worktrees")
    deadline = time.time() + 5.0
    while True:
        leftovers = []
        trash_left = []
        if os.path.isdir(wroot):
            for repo_dir in os.listdir(wroot):
                rd = os.path.join(wroot, repo_dir)
                if not os.path.isdir(rd):
                    continue
                for e in os.listdir(rd):
                    if e == ".trash":
                        t = os.path.join(rd, e)
                        if os.path.isdir(t) and os.listdir(t):
                            trash_left.append(os.path.join(repo_dir, e))
                    elif run_id_like(e) or os.path.isdir(os.path.join(rd, e)):
                        leftovers.append(os.path.join(repo_dir, e))
        if not leftovers and not trash_left:
            break
        if time.time() > deadline:
            if leftovers:
                c.violate("d", "worktree root still has run directories: %s" % leftovers)
            if trash_left:
                c.violate("d", ".trash not purged within 5 s: %s" % trash_left)
            break
        time.sleep(0.2)
        reap()
    runs_dir = os.path.join(c.repo, ".massgen", "runs")
    if os.path.isdir(runs_dir):
        left = [e for e in os.listdir(runs_dir)]
        if left:
            c.notes.append("after clean --all --force, .massgen/runs still holds %s" % left)
            if any(run_id_like(e) for e in left):
                c.violate("d", "after clean --all --force, .massgen/runs still holds runs: %s" % left)


def find_merge_match(c: Case, tip, agents, merges_requested):
    """Which agent (or pair) the user's branch tip corresponds to: returns a label or None."""
    tip_entries = c.tree_entries(tip)
    if tip_entries == c.base_entries:
        return "base-tree"
    singles = {}
    for a in agents:
        exp = apply_changes(c.base_entries, agent_full_changes(c, a))
        singles[a["name"]] = exp
        if tip_entries == exp:
            return a["name"]
    # a second merge requested in recovery on top of the run's own merge
    for first in agents:
        for second in agents:
            if first is second:
                continue
            both = apply_changes(singles[first["name"]], agent_full_changes(c, second))
            if tip_entries == both:
                return first["name"] + "+" + second["name"]
    return None


def describe_tree_diff(c, tip, agents):
    tip_entries = c.tree_entries(tip)
    changed = sorted(p for p in set(tip_entries) | set(c.base_entries)
                     if tip_entries.get(p) != c.base_entries.get(p))
    lines = ["tracked files: base %d, tip %d; changed paths vs base: %d" % (
        len(c.base_entries), len(tip_entries), len(changed))]
    for a in agents:
        exp = agent_full_changes(c, a)
        started, done = ledger_state(a)
        miss = [p for p in exp if tip_entries.get(p) != exp[p]]
        extra = [p for p in changed if p not in exp]
        lines.append("  vs %s (ops done %d/%d): %d of its paths differ, %d changed paths not its own" % (
            a["name"], len(done), len([o for o in a["ops"] if o.kind not in ("sleep", "commit")]),
            len(miss), len(extra)))
        if len(miss) <= 5 and len(extra) <= 8:
            lines.append("     differ: %s; not its own: %s" % (miss, extra))
    return "\n".join(lines)


def check_branch_and_merge(c: Case, agents, when, expect_merged=None, merges_requested=()):
    """(b): the user's branch is the base or base + exactly one candidate (or two when the
    recovery merged a second)."""
    tip = c.rev("refs/heads/main")
    head = c.git("symbolic-ref", "-q", "HEAD", check=False).stdout.decode().strip()
    if head != "refs/heads/main":
        c.violate("b", "%s: HEAD is no longer on main: %r" % (when, head))
    if tip == c.base:
        c.info["merged"] = None
        if expect_merged:
            a = [x for x in agents if x["name"] == expect_merged.split("+")[-1]]
            _, done = ledger_state(a[0]) if a else (set(), set())
            if a and any(op.idx in done and op.kind not in ("sleep", "commit") for op in a[0]["ops"]):
                c.violate("b", "%s: expected %s merged, main is still the base" % (when, expect_merged))
        return None
    # must descend from the base
    anc = c.git("merge-base", "--is-ancestor", c.base, tip, check=False).returncode
    if anc != 0:
        c.violate("b", "%s: main %s does not descend from the base %s" % (when, tip, c.base))
    m = find_merge_match(c, tip, agents, merges_requested)
    c.info["merged"] = m
    if m is None:
        c.violate("b", "%s: main moved to %s whose tree is not base + one candidate's complete changes:\n%s" % (
            when, tip[:12], describe_tree_diff(c, tip, agents)))
    elif m == "base-tree":
        c.notes.append("%s: main moved to %s with the base tree" % (when, tip[:12]))
    elif expect_merged and m != expect_merged and not m.startswith(expect_merged + "+") \
            and not m.endswith("+" + expect_merged):
        c.violate("b", "%s: expected %s merged, main matches %s" % (when, expect_merged, m))
    return m


def check_recoverable(c: Case, agents, clean_rec):
    """(c): after clean --all without --force, every completed write of every agent is on
    its own massgen branch, or on main when that candidate was merged."""
    br = c.branches()
    main_entries = c.tree_entries(c.rev("refs/heads/main"))
    never_set_up = set(re.findall(r"massgen: (\S+)'s worktree was never completely set up",
                                  clean_rec["stdout"] + clean_rec["stderr"]))
    for a in agents:
        started, done = ledger_state(a)
        file_ops = [op for op in a["ops"] if op.idx in done and op.kind != "sleep" and op.kind != "commit"]
        if not file_ops:
            continue
        if a["name"] in never_set_up:
            c.violate("c", "clean said %s's worktree was never completely set up, yet the agent completed %d ops" % (
                a["name"], len(file_ops)))
        mine = [r for r in br if r.endswith("/" + a["name"])]
        writes = [op for op in file_ops if op.kind != "delete"]
        deletes = [op for op in file_ops if op.kind == "delete"]
        if mine:
            entries = c.tree_entries(br[mine[0]])
            own = {op.path for op in a["ops"] if op.path}
            foreign = sorted(p for p in set(entries) | set(c.base_entries)
                             if entries.get(p) != c.base_entries.get(p) and p not in own)
            if foreign:
                c.violate("c-extra", "agent %s: %s holds changes the agent never made: %s" % (
                    a["name"], mine[0], foreign[:5]))
            lost = [op.path for op in writes if entries.get(op.path) != expected_entry(c, op)]
            undeleted = [op.path for op in deletes if op.path in entries]
            if lost:
                got = [(p, entries.get(p)) for p in lost[:5]]
                c.violate("c", "agent %s: %d of %d completed writes not on %s: %s (branch has %s)" % (
                    a["name"], len(lost), len(writes), mine[0], lost[:5], got))
            if undeleted:
                c.violate("c", "agent %s: %d completed deletions not on %s: %s" % (
                    a["name"], len(undeleted), mine[0], undeleted[:5]))
        else:
            lost = [op.path for op in writes if main_entries.get(op.path) != expected_entry(c, op)]
            if lost:
                c.violate("c", "agent %s: no massgen branch after clean --all and %d of %d completed writes not on main either: %s" % (
                    a["name"], len(lost), len(writes), lost[:5]))


def agent_args(agents):
    args = []
    for a in agents:
        args += ["--agent-cmd", "%s=sh %s" % (a["name"], a["script"])]
    return args


# --------------------------------------------------------------------------- cases

def winner_of(rec):
    m = re.search(r"^(\S+) won:", rec["stdout"], re.M)
    return m.group(1) if m else None


def merged_of(rec):
    m = re.search(r"^(\S+) (fast-forwarded|merged)", rec["stdout"], re.M)
    return m.group(1) if m else None


def recovery(c: Case, agents, merge_agent=None):
    st = c.massgen(["status"], "status")
    c.expect_rc(st, {0})
    merges = []
    if merge_agent:
        env_extra = None
        if c.rng.random() < 0.3:
            env_extra = {"MASSGEN_TEST_KILL_AT": c.rng.choice(["merge-committed", "merge-applied"])}
        mr = c.massgen(["merge", "latest", merge_agent], "recovery-merge", env_extra=env_extra)
        if mr["rc"] == -signal.SIGKILL:
            if env_extra["MASSGEN_TEST_KILL_AT"] == "merge-applied":
                merges.append(merge_agent)
            c.massgen(["status"], "status-after-merge-kill")
        else:
            c.expect_rc(mr, {0, 1, 2})
            if mr["rc"] == 0:
                merges.append(merge_agent)
        c.info["recovery_merge"] = (merge_agent, env_extra, mr["rc"], (mr["stdout"] + mr["stderr"]).strip()[-300:])
    if c.info.get("kill_clean"):
        kc = c.massgen(["clean", "--all"], "clean-killed", kill_after=c.rng.uniform(0.0, 0.09))
        c.info["clean_kill_rc"] = kc["rc"]
        if kc["rc"] != -signal.SIGKILL:
            c.expect_rc(kc, {0})
        check_user_state(c, "after killed clean")
    check_user_state(c, "after status/merge")
    cl = c.massgen(["clean", "--all"], "clean")
    c.expect_rc(cl, {0})
    check_user_state(c, "after clean --all")
    check_recoverable(c, agents, cl)
    st2 = c.massgen(["status"], "status-after-clean")
    c.expect_rc(st2, {0})
    clf = c.massgen(["clean", "--all", "--force"], "clean-force")
    c.expect_rc(clf, {0})
    check_user_state(c, "after clean --all --force")
    check_after_force(c)
    return merges


def pick_agents(c: Case):
    profiles = ["writer", "slow", "committer", "deleter"]
    c.rng.shuffle(profiles)
    if c.rng.random() < 0.15:
        profiles[c.rng.randrange(4)] = "idle"
    return [gen_agent(c, n, p) for n, p in zip(AGENTS, profiles)]


def case_run_kill(c: Case, kind):
    """kind: ('random', t) | ('point', name) | ('none', None)."""
    build_repo(c)
    make_dirty(c)
    agents = pick_agents(c)
    if c.info.get("tail"):
        # an extra command at the end of agent d (after all its file ops)
        d = agents[3]
        text = open(d["script"]).read().rstrip("\n").split("\n")
        text.insert(len(text) - 1, c.info["tail"])
        with open(d["script"], "w") as f:
            f.write("\n".join(text) + "\n")
    c.info["agents"] = {a["name"]: (a["profile"], a["exit"], len(a["ops"])) for a in agents}
    args = ["run", "--test", "sh test.sh", "--merge"] + agent_args(agents) + ["fix the thing"]
    env_extra = None
    kill_after = None
    if kind[0] == "point":
        env_extra = {"MASSGEN_TEST_KILL_AT": kind[1]}
    elif kind[0] in ("random", "phase"):
        kill_after = kind[1]
    kill_when = None
    if kind[0] == "phase":
        # kill_after seconds after the agents were started
        def kill_when():
            try:
                return b"worktrees ready" in open(c.current_stderr, "rb").read()
            except FileNotFoundError:
                return False
    rec = c.massgen(args, "run", env_extra=env_extra, kill_after=kill_after, kill_when=kill_when)
    killed = rec["rc"] == -signal.SIGKILL
    c.info["run_rc"] = rec["rc"]
    c.info["killed"] = killed
    c.info["stage_at_kill"] = last_stage(rec["stderr"]) if killed else None
    if not killed:
        c.expect_rc(rec, {0, 1})
        if kind[0] == "point":
            c.notes.append("kill point %s was not reached (rc %s)" % (kind[1], rec["rc"]))
    check_user_state(c, "right after run")
    expect = None
    if not killed and rec["rc"] == 0:
        expect = merged_of(rec)
        w = winner_of(rec)
        if expect != w:
            c.violate("b", "run exited 0 but merged %r while the winner is %r" % (expect, w))
    m = check_branch_and_merge(c, agents, "right after run", expect_merged=expect)
    if killed and m not in (None, "base-tree") and kind != ("point", "merge-applied") and kind[0] not in ("random", "phase"):
        c.violate("b", "killed at %s but main moved to %s" % (kind, m))
    if kind == ("point", "merge-committed") and killed and m is not None:
        c.violate("b", "killed at merge-committed (before git merge --ff-only) but main moved: %s" % m)
    merge_agent = c.rng.choice(AGENTS) if c.rng.random() < 0.4 else None
    merges = recovery(c, agents, merge_agent)
    check_branch_and_merge(c, agents, "after recovery",
                           expect_merged=(merges[-1] if merges and m is None else (m if m not in (None, "base-tree") else None)),
                           merges_requested=merges)
    return killed


def case_merge_kill(c: Case, kind):
    """A completed run without --merge, then `merge latest AGENT` killed."""
    build_repo(c)
    make_dirty(c)
    agents = pick_agents(c)
    c.info["agents"] = {a["name"]: (a["profile"], a["exit"], len(a["ops"])) for a in agents}
    keep = ["--keep"] if c.rng.random() < 0.3 else []
    rec = c.massgen(["run", "--test", "sh test.sh"] + keep + agent_args(agents) + ["fix it"], "run")
    c.expect_rc(rec, {0, 1})
    w = winner_of(rec)
    target = w if (w and c.rng.random() < 0.7) else c.rng.choice(AGENTS)
    c.info["merge_target"] = target
    env_extra, kill_after = None, None
    if kind[0] == "point":
        env_extra = {"MASSGEN_TEST_KILL_AT": kind[1]}
    else:
        kill_after = kind[1]
    mr = c.massgen(["merge", "latest", target], "merge", env_extra=env_extra, kill_after=kill_after)
    killed = mr["rc"] == -signal.SIGKILL
    c.info["merge_rc"] = mr["rc"]
    c.info["killed"] = killed
    if not killed:
        c.expect_rc(mr, {0, 1})
    check_user_state(c, "right after killed merge")
    m = check_branch_and_merge(c, agents, "right after killed merge")
    if m not in (None, "base-tree") and m != target:
        c.violate("b", "merge latest %s moved main to %s's candidate" % (target, m))
    if kind == ("point", "merge-committed") and killed and m is not None:
        c.violate("b", "killed at merge-committed but main moved: %s" % m)
    if kind == ("point", "merge-applied") and killed and m is None:
        c.notes.append("killed at merge-applied but main did not move (merge not applicable?)")
    merge_agent = None
    if c.rng.random() < 0.5:
        merge_agent = target if c.rng.random() < 0.7 else c.rng.choice(AGENTS)
    merges = recovery(c, agents, merge_agent)
    first = m if m not in (None, "base-tree") else None
    check_branch_and_merge(c, agents, "after recovery",
                           expect_merged=first or (merges[-1] if merges else None),
                           merges_requested=merges)
    return killed


def last_stage(stderr):
    lines = [l for l in stderr.splitlines() if l.startswith("massgen:")]
    return lines[-1][:120] if lines else "(nothing printed)"


# ---- escape cases -------------------------------------------------------------------

ESCAPES = {
    "abs-write-new": 'echo escaped > "$U/escaped.txt"',
    "abs-write-tracked": 'echo escaped >> "$U/$T"',
    "abs-write-dirty": 'echo escaped >> "$U/$M"',
    "git-C-add-A": 'git -C "$U" add -A',
    "tag": 'git tag evil-tag',
    "edit-config": 'printf "[evil]\\n\\tx = 1\\n" >> "$U/.git/config"',
    "git-config-cmd": 'git config evil.key 1',
    "hook": 'printf "#!/bin/sh\\necho pwned\\n" > "$U/.git/hooks/pre-commit"; chmod +x "$U/.git/hooks/pre-commit"',
    "move-branch": 'echo moved >> "$T" && git checkout -q --ignore-other-worktrees main && git commit -qam x',
    "update-ref": 'echo x >> "$T" && git commit -qam agentcommit && git update-ref refs/heads/main HEAD',
    "info-exclude": 'echo "untracked-user.txt" >> "$U/.git/info/exclude"',
    "git-C-stash": 'git -C "$U" stash -q',
    "head-detach": 'git -C "$U" checkout -q --detach',
}
# Probes whose expected outcome is not prescribed; only reported.
PROBES = {
    "own-worktree-stash": 'echo x >> "$T" && git stash -q',
    "worktree-add": 'git worktree add -q --detach "$CASE/extra-wt" HEAD',
    "notes": 'git notes add -m hi HEAD',
}


def case_escape(c: Case, name, body, probe=False):
    build_repo(c)
    make_dirty(c)
    regular = sorted(p for p, (m, _) in c.base_entries.items()
                     if m == "100644" and p not in c.dirty_paths and p not in ("test.sh", ".gitignore"))
    t = c.rng.choice(regular)
    good = gen_agent(c, "good", "writer")
    script = os.path.join(c.agents_dir, "evil.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nU=%s\nT=%s\nM=%s\nCASE=%s\necho evil > evil_own.txt\n%s\nexit 0\n" % (
            shlex.quote(c.repo), shlex.quote(t), shlex.quote(c.dirty["modified"]),
            shlex.quote(c.dir), body))
    args = ["run", "--test", "sh test.sh", "--merge", "--agent-cmd", "good=sh %s" % good["script"],
            "--agent-cmd", "evil=sh %s" % script, "task"]
    before_main = c.rev("refs/heads/main")
    rec = c.massgen(args, "run")
    after_main = c.rev("refs/heads/main")
    c.info["escape"] = name
    c.info["run_rc"] = rec["rc"]
    result = {"rc": rec["rc"], "breach_in_stderr": "breach" in rec["stderr"],
              "main_moved": before_main != after_main}
    c.info["escape_result"] = result
    if not probe:
        if rec["rc"] != 1 or "breach" not in rec["stderr"]:
            c.violate("escape", "escape %s: run --merge exited %s, 'breach' in stderr: %s; stderr tail: %s" % (
                name, rec["rc"], "breach" in rec["stderr"], rec["stderr"][-800:]))
        merged = merged_of(rec)
        if merged:
            c.violate("escape", "escape %s: run --merge merged %s despite the escape" % (name, merged))
        if name not in ("move-branch", "update-ref") and before_main != after_main:
            c.violate("escape", "escape %s: main moved %s -> %s" % (name, before_main, after_main))
        if name in ("move-branch", "update-ref"):
            # main was moved by the agent; git-massgen must not have merged on top
            msgs = c.git("log", "--format=%s", "%s..main" % before_main).stdout.decode().split("\n")
            if any(m.startswith("Merge massgen") or "candidate for run" in m for m in msgs):
                c.violate("escape", "escape %s: git-massgen merged on top of the moved branch: %s" % (name, msgs))
    cl = c.massgen(["clean", "--all", "--force"], "clean-force")
    c.expect_rc(cl, {0})
    if name == "head-detach":
        c.git("checkout", "-q", "main", check=False)
    if name == "worktree-add":
        wl = c.git("worktree", "list").stdout.decode()
        result["worktrees_after_clean_force"] = wl.strip().splitlines()
        c.git("worktree", "remove", "--force", os.path.join(c.dir, "extra-wt"), check=False)
    check_after_force(c)
    return None


def case_late_writer(c: Case, kill, linger=True):
    """An agent leaves `setsid sh -c 'sleep 3; echo late > $U/late.txt' &` behind."""
    build_repo(c)
    make_dirty(c)
    script = os.path.join(c.agents_dir, "late.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nexport USER_REPO=%s\necho mine > late_agent.txt\n"
                "export CASE_DIR=%s\n"
                "setsid sh -c 'echo started > \"$CASE_DIR/late-started\"; sleep 3; echo late > \"$USER_REPO/late.txt\"' >/dev/null 2>&1 &\n"
                "%s\nexit 0\n" % (shlex.quote(c.repo), shlex.quote(c.dir),
                                   "sleep 1.5" if kill else ("sleep 0.5" if linger else "")))
    good = gen_agent(c, "good", "writer")
    args = ["run", "--test", "sh test.sh", "--merge", "--agent-cmd", "late=sh %s" % script,
            "--agent-cmd", "good=sh %s" % good["script"], "task"]
    started = os.path.join(c.dir, "late-started")
    rec = c.massgen(args, "run", kill_after=(0.2 if kill else None),
                    kill_when=(lambda: os.path.exists(started)) if kill else None)
    c.info["late_linger"] = linger
    c.info["run_rc"] = rec["rc"]
    if kill:
        c.massgen(["status"], "status")
        cl = c.massgen(["clean", "--all"], "clean")
        c.expect_rc(cl, {0})
    time.sleep(4.0)
    reap()
    if not os.path.exists(os.path.join(c.dir, "late-started")):
        c.notes.append("the setsid'd late writer never started (check is vacuous)")
        if linger:
            c.violate("harness", "late writer did not start")
    if os.path.exists(os.path.join(c.repo, "late.txt")):
        c.violate("late", "late.txt was written into the user's work tree after the run (kill=%s, run rc %s)" % (kill, rec["rc"]))
    cl = c.massgen(["clean", "--all", "--force"], "clean-force")
    c.expect_rc(cl, {0})
    check_after_force(c)


# --------------------------------------------------------------------------- driver

def save_case(c: Case, results_dir, keep):
    with open(os.path.join(c.dir, "case.json"), "w") as f:
        json.dump({"info": c.info, "violations": c.violations, "notes": c.notes,
                   "log": c.log}, f, indent=1, default=str)
    if c.violations or keep:
        dst = os.path.join(results_dir, "cases", c.name)
        try:
            shutil.copytree(c.dir, dst, symlinks=True, ignore_dangling_symlinks=True,
                            ignore=shutil.ignore_patterns(".trash"))
        except shutil.Error:
            pass  # files vanishing while a background purge runs
        with open(os.path.join(dst, "repro.txt"), "w") as f:
            f.write("# replay this case (same repository, agents and kill choice):\n")
            f.write("python3 %s --case-seed %d --only %s\n\n# commands as run:\n" % (
                os.path.abspath(__file__), c.seed, c.info.get("kind_name", "?")))
            envs = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(c.env.items()))
            f.write("cd %s\nexport %s\n" % (shlex.quote(c.repo), envs))
            for rec in c.log:
                pre = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in rec["env_extra"].items())
                kill = "  # SIGKILLed by the harness after %.3fs" % rec["kill_after"] if rec["killed_by_harness"] else ""
                f.write("%s%s  # rc=%s%s\n" % (pre + " " if pre else "", " ".join(shlex.quote(x) for x in rec["argv"]), rec["rc"], kill))
    shutil.rmtree(c.dir, ignore_errors=True)


def plan_cases(rng, only=None):
    """An endless, shuffled stream of case kinds."""
    while True:
        r = rng.random()
        if only:
            kinds = [only]
        else:
            kinds = None
        if kinds is None:
            if r < 0.30:
                kinds = ["run-random"]
            elif r < 0.45:
                kinds = ["run-phase"]
            elif r < 0.72:
                kinds = ["run-point"]
            elif r < 0.86:
                kinds = ["merge-kill"]
            elif r < 0.94:
                kinds = ["clean-kill"]
            else:
                kinds = ["run-nokill"]
        yield kinds[0]


def run_one(kind, c, rng):
    c.info["kind_name"] = kind
    if kind == "run-random":
        t = round(c.rng.uniform(0.0, 3.0), 3)
        c.info["kind"] = ("random", t)
        return case_run_kill(c, ("random", t))
    if kind == "run-point":
        p = c.rng.choice(KILL_POINTS)
        c.info["kind"] = ("point", p)
        return case_run_kill(c, ("point", p))
    if kind == "run-phase":
        t = round(c.rng.uniform(0.0, 2.5), 3)
        c.info["kind"] = ("phase", t)
        return case_run_kill(c, ("phase", t))
    if kind == "clean-kill":
        t = round(c.rng.uniform(0.2, 2.6), 3)
        c.info["kind"] = ("random", t)
        c.info["kill_clean"] = True
        return case_run_kill(c, ("random", t))
    if kind.startswith("dotgit-"):
        c.info["tail"] = {"dotgit-rm": "rm -f .git", "dotgit-rm-kill": "rm -f .git",
                          "dotgit-replace": "rm -f .git && git init -q .",
                          "dotgit-replace-kill": "rm -f .git && git init -q ."}[kind]
        if kind.endswith("-kill"):
            t = round(c.rng.uniform(0.3, 3.0), 3)
            c.info["kind"] = ("random", t)
            return case_run_kill(c, ("random", t))
        c.info["kind"] = ("none", None)
        case_run_kill(c, ("none", None))
        return False
    if kind == "run-nokill":
        c.info["kind"] = ("none", None)
        case_run_kill(c, ("none", None))
        return False
    if kind == "merge-kill":
        r = c.rng.random()
        if r < 0.4:
            k = ("point", "merge-committed")
        elif r < 0.8:
            k = ("point", "merge-applied")
        else:
            k = ("random", round(c.rng.uniform(0.0, 0.06), 4))
        c.info["kind"] = k
        return case_merge_kill(c, k)
    raise ValueError(kind)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--max-kills", type=int, default=200)
    ap.add_argument("--only", default=None)
    ap.add_argument("--case-seed", type=int, default=None)
    ap.add_argument("--no-escapes", action="store_true")
    ap.add_argument("--escape-reps", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep every case directory")
    args = ap.parse_args()
    set_subreaper()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = os.path.join(ROOT, "results", stamp)
    os.makedirs(os.path.join(results, "cases"))
    work = os.path.join(ROOT, "tmp", stamp)
    os.makedirs(work)
    summary = {"seed": args.seed, "cases": [], "kill_points": 0, "by_kind": {},
               "violations": []}
    t_end = time.time() + args.minutes * 60
    rng = random.Random(args.seed)
    counter = [0]

    def do(kind, fn, seed=None):
        counter[0] += 1
        seed = seed if seed is not None else rng.getrandbits(40)
        c = Case(work, "%04d-%s" % (counter[0], kind), seed)
        t0 = time.time()
        killed = None
        try:
            killed = fn(c)
        except Exception:
            c.violate("harness", "harness exception: " + traceback.format_exc()[-1500:])
        c.info["seconds"] = round(time.time() - t0, 2)
        c.info["kills"] = c.kills
        entry = {"name": c.name, "kind": kind, "info": c.info, "violations": c.violations,
                 "notes": c.notes}
        summary["cases"].append(entry)
        summary["by_kind"][kind] = summary["by_kind"].get(kind, 0) + 1
        summary["kill_points"] += c.kills
        for inv, msg in c.violations:
            summary["violations"].append({"case": c.name, "seed": seed, "inv": inv, "msg": msg})
        flag = "VIOLATION" if c.violations else "ok"
        print("%s %-28s %5.1fs kills=%d %s %s" % (flag, c.name, c.info["seconds"], c.kills,
              c.info.get("kind"), c.info.get("stage_at_kill") or ""), flush=True)
        for inv, msg in c.violations:
            print("   (%s) %s" % (inv, msg.replace("\n", "\n       ")), flush=True)
        save_case(c, results, args.keep)
        with open(os.path.join(results, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1, default=str)

    if args.only and args.only.startswith("late"):
        for kill, linger in ((False, True), (False, True), (False, False), (True, True), (True, True), (True, True)):
            do("late-writer" + ("-kill" if kill else "") + ("" if linger else "-nolinger"),
               lambda c, k=kill, l=linger: case_late_writer(c, k, l))
        shutil.rmtree(work, ignore_errors=True)
        return
    if args.case_seed is not None:
        do(args.only or "run-random", lambda c: run_one(args.only or "run-random", c, rng), seed=args.case_seed)
        return
    if not args.no_escapes and args.only is None:
        for rep in range(args.escape_reps):
            for name, body in ESCAPES.items():
                do("escape-" + name, lambda c, n=name, b=body: case_escape(c, n, b))
        for name, body in PROBES.items():
            do("probe-" + name, lambda c, n=name, b=body: case_escape(c, n, b, probe=True))
        for kill, linger in ((False, True), (False, True), (False, False), (True, True), (True, True), (True, True)):
            do("late-writer" + ("-kill" if kill else "") + ("" if linger else "-nolinger"),
               lambda c, k=kill, l=linger: case_late_writer(c, k, l))
        for kind in ["dotgit-rm"] * 2 + ["dotgit-rm-kill"] * 3 + ["dotgit-replace"] * 2 + ["dotgit-replace-kill"] * 2:
            do(kind, lambda c, k=kind: run_one(k, c, rng))
    for kind in plan_cases(rng, args.only):
        if time.time() > t_end or summary["kill_points"] >= args.max_kills:
            break
        do(kind, lambda c, k=kind: run_one(k, c, rng))
    shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(results, "violations.txt"), "w") as f:
        for v in summary["violations"]:
            f.write("[%s] %s (seed %s): %s\n\n" % (v["inv"], v["case"], v["seed"], v["msg"]))
    n_cases = len(summary["cases"])
    print("\n%d cases, %d kill points landed, %d violations; results in %s" % (
        n_cases, summary["kill_points"], len(summary["violations"]), results))
    print("by kind:", json.dumps(summary["by_kind"], sort_keys=True))


if __name__ == "__main__":
    main()
