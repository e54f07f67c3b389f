"""The child side of the code sandbox: confine this process, then run one generated program.

Started by sandbox.py as `python -I -B sandbox_child.py` in a fresh temporary folder, with a JSON
request on stdin. It imports nothing from this project (the isolated interpreter cannot), and it
confines itself before the program's first line runs, strongest layer first:

  1. resource limits: CPU seconds, address space, file size, open files, no core dumps;
  2. a network namespace of its own (no interfaces but a downed loopback), when the kernel allows;
  3. Landlock: writes only below the working folder, no TCP bind or connect, no signals to
     processes outside the sandbox, when the kernel has it;
  4. as root: the nobody user (and a process cap), so nothing outside is writable by permission;
  5. an audit hook: no new processes, no ctypes, no sockets, no writes outside the folder, even
     where the kernel layers are missing.

It reports on the file descriptor that was its stdout, with the nonce the parent chose: a program
that exits early (sys.exit(0), os._exit(0)) cannot pass for one whose tests ran.
"""

import ctypes
import json
import os
import resource
import sys

LANDLOCK_CREATE_RULESET_VERSION = 1
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446  # x86_64 and arm64
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
NOBODY = 65534

# Landlock filesystem rights that change the filesystem (reads and execution stay allowed).
FS_WRITE_FILE = 1 << 1
FS_WRITE_RIGHTS_BY_ABI = {
    1: FS_WRITE_FILE | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11)
    | (1 << 12),
    2: 1 << 13,  # REFER: moving files between folders
    3: 1 << 14,  # TRUNCATE
}
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1


class RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def set_limits(limits: dict) -> None:
    cpu = int(limits["cpuSeconds"])
    # The soft limit sends SIGXCPU; the hard one, a second later, SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memoryBytes"], limits["memoryBytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fileBytes"], limits["fileBytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["openFiles"], limits["openFiles"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def leave_network(libc: ctypes.CDLL) -> str | None:
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    return "network namespace" if libc.unshare(flags) == 0 else None


def landlock(libc: ctypes.CDLL, folder: str) -> str | None:
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        return None
    write_rights = 0
    for version, rights in FS_WRITE_RIGHTS_BY_ABI.items():
        if abi >= version:
            write_rights |= rights
    attr = RulesetAttr(write_rights, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                       SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    # Older kernels reject the fields they do not know: pass only the prefix of the struct they have.
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if ruleset < 0:
        return None
    for path, rights in ((folder, write_rights), (os.devnull, FS_WRITE_FILE)):
        fd = os.open(path, os.O_PATH)
        rule = PathBeneathAttr(rights, fd)
        added = libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0)
        os.close(fd)
        if added != 0:
            os.close(ruleset)
            return None
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
        os.close(ruleset)
        return None
    os.close(ruleset)
    return f"landlock v{abi}"


def others_can_import() -> bool:
    """Whether another user could read this interpreter's standard library (a Python installed
    under /root, as pyenv does, cannot be imported from by nobody)."""
    import stat

    library = os.path.dirname(os.__file__)
    path = library
    while True:
        mode = os.stat(path).st_mode
        if not mode & stat.S_IXOTH or (path == library and not mode & stat.S_IROTH):
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def become_nobody(folder: str, processes: int) -> str:
    if os.geteuid() != 0:
        return "own user (not root)"
    if not others_can_import():
        return "stays root: the interpreter's library is not readable by nobody"
    os.chown(folder, NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    # Counted per user, so only meaningful once this is a user of its own.
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    return "user nobody"


def audit_hook(folder: str) -> None:
    inside = os.path.realpath(folder) + os.sep
    spawning = {"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
                "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill"}
    changing = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink", "os.link",
                "os.truncate", "os.utime", "shutil.rmtree", "shutil.move"}

    def outside(path: object) -> bool:
        if isinstance(path, int):
            return False  # an already-open descriptor
        try:
            name = os.fsdecode(path)  # type: ignore[arg-type]
        except TypeError:
            return True
        return not (os.path.realpath(name) + os.sep).startswith(inside)

    def hook(event: str, args: tuple) -> None:
        if event in spawning or event.startswith(("ctypes.", "socket.")):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
            if writing and path is not None and outside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the working folder is not allowed")
        elif event in changing and args and outside(args[0]):
            raise PermissionError(f"sandbox: {event} outside the working folder is not allowed")

    sys.addaudithook(hook)


def main() -> None:
    request = json.loads(sys.stdin.read())
    folder = os.getcwd()
    report = os.fdopen(os.dup(1), "w")
    # The program's own output goes nowhere: only this process's verdict reaches the parent.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    limits = request["limits"]
    layers = [f"cpu {limits['cpuSeconds']} s, memory {limits['memoryBytes'] >> 20} MiB, files {limits['fileBytes'] >> 20} MiB"]
    set_limits(request["limits"])
    libc = ctypes.CDLL(None, use_errno=True)
    enabled = set(request.get("layers", ("network", "landlock", "nobody", "audit")))
    if "network" in enabled:
        layers.append(leave_network(libc) or "network namespace unavailable")
    if "landlock" in enabled:
        layers.append(landlock(libc, folder) or "landlock unavailable")
    if "nobody" in enabled:
        layers.append(become_nobody(folder, request["limits"]["processes"]))
    if "audit" in enabled:
        audit_hook(folder)
        layers.append("audit hook")
    verdict = {"nonce": request["nonce"], "layers": layers}
    try:
        exec(compile(request["program"], "<generated>", "exec"), {"__name__": "__main__"})
        verdict["status"] = "passed"
    except SystemExit as exc:
        verdict.update(status="failed", error=f"SystemExit({exc.code!r}) before the tests finished")
    except MemoryError:
        verdict.update(status="failed", error="MemoryError: the memory limit was reached")
    except BaseException as exc:  # noqa: BLE001 - whatever the program raised is its verdict
        verdict.update(status="failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
    report.write(json.dumps(verdict))
    report.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
