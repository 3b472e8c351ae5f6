"""Start an MXNet parameter-server job: one scheduler, S servers and W workers, plain processes of this Python with
the ``DMLC_*`` variables (MXNet's own ``dist_sync`` kvstore; no gradient exchange of our own), on this machine or
over several hosts.

The scheduler and the servers only ``import mxnet`` (with ``DMLC_ROLE`` set, importing MXNet runs the role and
exits when the workers finish). Each worker runs ``python -m rfcn_face <command>``; for ``train`` the launcher
adds ``--kvstore dist_sync`` unless a kvstore is given.

**Placement.** The scheduler runs on the first host; the servers, then the workers, go round robin over the hosts
(server ``i`` on host ``i mod n``, worker ``j`` on host ``(S + j) mod n``). Every role gets ``DMLC_ROLE``,
``DMLC_PS_ROOT_URI`` (the first host's address), ``DMLC_PS_ROOT_PORT``, ``DMLC_NUM_SERVER``, ``DMLC_NUM_WORKER``
and ``DMLC_NODE_HOST`` (its own host's address: ps-lite binds the role there).

**Launchers** (:data:`LAUNCHERS`): ``local`` starts every role on this machine (distinct loopback addresses,
``127.0.0.2``, ``127.0.0.3``, stand in for hosts); ``ssh`` starts each role as ``ssh HOST 'cd CWD && exec env
DMLC_...=... PYTHON -m ...'`` (the same working directory and Python path on every host).

**Lifecycle.** Every role is the leader of its own process group (a new session, locally or under sshd). The
launcher polls every role: the first role that fails (non-zero exit or a signal; a scheduler or server that ends
while the workers have not finished within ``finish_grace``) ends the job, naming the role and its host, and the
other roles are stopped (SIGTERM to each process group, SIGKILL after ``stop_grace``; through ssh: ``kill`` of the
remote group over the same ssh command). SIGINT, SIGTERM and SIGHUP to the launcher do the same. A busy scheduler
port is refused before anything starts, and a scheduler that fails to bind is recognised by its message.
"""
from __future__ import annotations

import codecs
import errno
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .plugins import Registry

__all__ = ["Host", "Role", "JobResult", "LaunchStopped", "LAUNCHERS", "free_port", "dmlc_env", "split_command",
           "has_kvstore", "parse_hosts", "read_hostfile", "plan_roles", "role_argv", "forwarded_env", "run_job",
           "launch"]

LAUNCHERS = Registry("launcher")
PID_MARKER = "rfcn_face-launch-pid"        # first stderr line of an ssh role: the remote process group
FORWARD_ENV = ("PYTHONPATH", "OMP_", "MXNET_", "RFCN_FACE_", "PS_", "NCCL_", "CUDA_VISIBLE_DEVICES")
DEFAULT_SSH = "ssh -o BatchMode=yes -o ConnectTimeout=10"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LaunchStopped(RuntimeError):
    """SIGTERM / SIGHUP reached the launcher: every role was stopped; ``code`` is 128 + the signal number."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Host:
    name: str          # as given ([user@]host): what ssh connects to
    address: str       # its IPv4 address: DMLC_NODE_HOST of its roles (DMLC_PS_ROOT_URI for the first host)


@dataclass(frozen=True)
class Role:
    kind: str          # scheduler | server | worker
    index: int
    host: Host

    def __str__(self) -> str:
        name = self.kind if self.kind == "scheduler" else f"{self.kind} {self.index}"
        return f"{name} on {self.host.name}"


@dataclass
class JobResult:
    code: int          # 0: every worker succeeded
    reason: str = ""   # one line: what ended the job (the role and its host)


# ------------------------------------------------------------------------------------------------ hosts and roles
def _resolve(name: str, source: str) -> Host:
    host = name.rsplit("@", 1)[-1]
    if not host or any(c.isspace() for c in name):
        raise ValueError(f"{source}: bad host name {name!r}")
    try:
        info = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError(f"{source}: cannot resolve host {host!r} ({getattr(e, 'strerror', None) or e})") from None
    return Host(name, info[0][4][0])


def parse_hosts(text: str, source: str = "--hosts") -> List[Host]:
    """``H1,H2,...`` (``[user@]host``, names or IPv4 addresses) -> hosts with their addresses, in order."""
    names = [t.strip() for t in str(text).split(",")]
    if not any(names) or not all(names):
        raise ValueError(f"{source}: expected a comma-separated list of hosts, e.g. node1,node2, got {text!r}")
    return [_resolve(n, source) for n in names]


def read_hostfile(path) -> List[Host]:
    """A host file: one ``[user@]host`` per line; blank lines and ``#`` comments are skipped."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--hostfile {path} is a folder, not a host file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"--hostfile not found: {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"--hostfile {path}: not a text file") from None
    hosts = []
    for k, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if len(words) > 1:
            raise ValueError(f"{path}:{k}: one host per line, got {line.strip()!r}")
        if words:
            hosts.append(_resolve(words[0], f"{path}:{k}"))
    if not hosts:
        raise ValueError(f"--hostfile {path}: no host in the file")
    return hosts


def plan_roles(hosts: Sequence[Host], workers: int, servers: int) -> List[Role]:
    """The scheduler on the first host; servers, then workers, round robin over the hosts."""
    n = len(hosts)
    return ([Role("scheduler", 0, hosts[0])] + [Role("server", i, hosts[i % n]) for i in range(servers)]
            + [Role("worker", j, hosts[(servers + j) % n]) for j in range(workers)])


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``address`` right now (so parallel jobs do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def dmlc_env(role: str, workers: int, servers: int, port: int, host: str = "127.0.0.1", base=None,
             node_host: Optional[str] = None) -> dict:
    """The environment of one process of the job (``role``: scheduler | server | worker; ``host``: the
    scheduler's address; ``node_host``: the address the role binds to, default ``host``)."""
    env = dict(os.environ if base is None else base)
    env.update({"DMLC_ROLE": role, "DMLC_PS_ROOT_URI": host, "DMLC_PS_ROOT_PORT": str(port),
                "DMLC_NUM_SERVER": str(servers), "DMLC_NUM_WORKER": str(workers),
                "DMLC_NODE_HOST": node_host or host})
    env.setdefault("PS_VERBOSE", os.environ.get("PS_VERBOSE", "0"))
    return env


def forwarded_env(environ=None) -> Dict[str, str]:
    """The variables an ssh role gets from the launcher's environment besides its ``DMLC_*`` ones (names or name
    prefixes of :data:`FORWARD_ENV`)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if any(k == p or (p.endswith("_") and k.startswith(p))
                                                    for p in FORWARD_ENV)}


def split_command(command: Sequence[str]) -> List[str]:
    """The workers' ``rfcn_face`` command: what follows ``--`` (argparse's REMAINDER keeps it); an error when empty."""
    cmd = list(command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise ValueError("launch: give the command after '--', e.g. launch --workers 2 -- train --config ROW.yaml "
                         "--out RUN_DIR")
    return cmd


def has_kvstore(cmd: Sequence[str]) -> bool:
    """Whether the command gives ``--kvstore`` itself (``--kvstore X`` or ``--kvstore=X``)."""
    return any(a == "--kvstore" or a.startswith("--kvstore=") for a in cmd)


def _worker_command(command: Sequence[str]) -> List[str]:
    cmd = split_command(command)
    if cmd[0] == "train" and not has_kvstore(cmd):
        cmd += ["--kvstore", "dist_sync"]
    return [sys.executable, "-m", "rfcn_face"] + cmd


def role_argv(kind: str, command: Sequence[str]) -> List[str]:
    """A worker runs the ``rfcn_face`` command; the scheduler and the servers only import MXNet."""
    return _worker_command(command) if kind == "worker" else [sys.executable, "-c", "import mxnet"]


# ------------------------------------------------------------------------------------------------ role processes
class _StderrReader(threading.Thread):
    """Reads a role's stderr: takes out the ssh launcher's pid line, keeps the last characters (a scheduler's
    bind failure is recognised there) and passes the rest on at once (``live``) or only on request."""

    def __init__(self, pipe, live: bool, marker: bool):
        super().__init__(daemon=True)
        self.pipe, self.live, self.marker = pipe, live, marker
        self.tail, self.remote_pid, self._head = "", None, ""
        self.start()

    def run(self) -> None:
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        fd = self.pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            self._emit(self._take_marker(dec.decode(chunk)) if self.marker else dec.decode(chunk))
            if not chunk:
                break
        self._emit(self._head)
        self.pipe.close()

    def _take_marker(self, text: str) -> str:
        """Text before and after our line ``rfcn_face-launch-pid <pid>`` (ssh may warn before it); a partial
        line is held back until it is complete."""
        lines = (self._head + text).split("\n")
        self._head, out = lines.pop(), ""
        for k, line in enumerate(lines):
            words = line.split()
            if len(words) == 2 and words[0] == PID_MARKER and words[1].isdigit():
                self.remote_pid, self.marker = int(words[1]), False
                rest = lines[k + 1:] + [self._head]
                self._head = ""
                return out + "\n".join(rest)
            out += line + "\n"
        return out

    def _emit(self, text: str) -> None:
        if not text:
            return
        self.tail = (self.tail + text)[-8192:]
        if self.live:
            sys.stderr.write(text)
            sys.stderr.flush()

    def last_line(self) -> str:
        lines = [ln.strip() for ln in self.tail.splitlines() if ln.strip()]
        return lines[-1][:300] if lines else ""


class RoleProcess:
    """One started role: its local process (the role itself, or the ssh client) and its stderr reader."""

    def __init__(self, role: Role, proc: subprocess.Popen, reader: Optional[_StderrReader]):
        self.role, self.proc, self.reader = role, proc, reader
        self.seen = False                  # its exit was handled by the watch loop

    def poll(self) -> Optional[int]:
        return self.proc.poll()

    @property
    def remote_pid(self) -> Optional[int]:
        return self.reader.remote_pid if self.reader is not None else None


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Launcher:
    """How roles are started on their host and stopped there (one subclass per ``--launcher``)."""
    name = ""

    def __init__(self, ssh_command: Optional[str] = None):
        if ssh_command is not None:
            raise ValueError(f"--ssh-command needs --launcher ssh (the launcher is {self.name})")

    def check_hosts(self, hosts: Sequence[Host]) -> None:
        """Refuse hosts this launcher cannot use, before anything starts."""

    def check_port(self, address: str, port: int) -> None:
        """A ValueError naming ``--port`` when the scheduler's port is known to be in use."""

    def default_port(self, address: str) -> int:
        return free_port("0.0.0.0")

    def start(self, role: Role, argv: List[str], env: Dict[str, str], capture: bool) -> RoleProcess:
        raise NotImplementedError

    def signal(self, rp: RoleProcess, sig: int) -> None:
        raise NotImplementedError

    def reaped(self, rp: RoleProcess) -> None:
        """After the role's local process was reaped: clean up what it may have left."""

    def finish(self) -> None:
        """Wait for any helper processes of :meth:`signal` (remote kills)."""


@LAUNCHERS.register("local")
class LocalLauncher(Launcher):
    """Every role on this machine, as a child process that leads its own session / process group."""

    def check_hosts(self, hosts):
        for h in hosts:
            try:
                free_port(h.address)
            except OSError:
                raise ValueError(f"--hosts {h.name}: {h.address} is not an address of this machine ('--launcher "
                                 "local' runs every role here; other machines need --launcher ssh)") from None

    def check_port(self, address, port):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)      # as ZeroMQ binds: TIME_WAIT is no clash
            try:
                s.bind((address, port))
            except OSError as e:
                what = "is in use" if e.errno == errno.EADDRINUSE else f"cannot be bound ({e.strerror})"
                raise ValueError(f"--port {port} {what} on {address}: choose another --port (or leave it out for "
                                 "a free one)") from None

    def default_port(self, address):
        return free_port(address)

    def start(self, role, argv, env, capture):
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                stderr=subprocess.PIPE if capture else None, start_new_session=True)
        return RoleProcess(role, proc, _StderrReader(proc.stderr, live=False, marker=False) if capture else None)

    def signal(self, rp, sig):
        _killpg(rp.proc.pid, sig)          # the role and whatever it started (loader processes)

    def reaped(self, rp):
        _killpg(rp.proc.pid, signal.SIGKILL)    # children the role left behind in its group


@LAUNCHERS.register("ssh")
class SshLauncher(Launcher):
    """Each role through ``ssh HOST CMD``: CMD prints the remote shell's pid (a session leader under sshd, so the
    role's process group) and execs the role with its variables; stopping it is ``kill`` of that group through
    the same ssh command."""

    def __init__(self, ssh_command: Optional[str] = None):
        try:
            self.ssh = shlex.split(ssh_command or DEFAULT_SSH)
        except ValueError as e:
            raise ValueError(f"--ssh-command {ssh_command!r}: {e}") from None
        if not self.ssh:
            raise ValueError("--ssh-command is empty")
        self._kills: List[subprocess.Popen] = []

    def remote_command(self, argv: Sequence[str], env: Dict[str, str], cwd: Optional[str] = None) -> str:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
        return (f"cd {shlex.quote(cwd or os.getcwd())} && echo {PID_MARKER} $$ >&2 && exec env {exports} "
                + " ".join(shlex.quote(a) for a in argv))

    def command(self, role: Role, argv: Sequence[str], env: Dict[str, str], cwd: Optional[str] = None) -> List[str]:
        """The local command line that runs ``argv`` as ``role`` on its host."""
        return self.ssh + [role.host.name, self.remote_command(argv, env, cwd)]

    def check_port(self, address, port):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(3.0)
            if s.connect_ex((address, port)) == 0:
                raise ValueError(f"--port {port} is in use on {address} (something accepts connections there): "
                                 "choose another --port")

    def start(self, role, argv, env, capture):
        env = {**forwarded_env(), **env}
        proc = subprocess.Popen(self.command(role, argv, env), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        return RoleProcess(role, proc, _StderrReader(proc.stderr, live=not capture, marker=True))

    def signal(self, rp, sig):
        if rp.remote_pid is not None and rp.poll() is None:
            name = signal.Signals(sig).name[3:]
            kill = f"kill -s {name} -- -{rp.remote_pid} 2>/dev/null; true"
            self._kills.append(subprocess.Popen(self.ssh + [rp.role.host.name, kill], stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                start_new_session=True))
        if sig == signal.SIGKILL or rp.remote_pid is None:
            _killpg(rp.proc.pid, sig)      # the local ssh client (its exit ends the channel)

    def finish(self):
        deadline = time.time() + 15.0
        for k in self._kills:
            try:
                k.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                _killpg(k.pid, signal.SIGKILL)
                k.wait()
        self._kills.clear()


# ------------------------------------------------------------------------------------------------ the job
class _SignalFlag:
    """While active (main thread only), SIGINT / SIGTERM / SIGHUP set ``received`` instead of acting."""

    def __init__(self):
        self.received: Optional[int] = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._old[s] = signal.signal(s, self._set)
        return self

    def _set(self, signum, frame):
        self.received = self.received or signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _exit_text(rc: int) -> str:
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"


class Job:
    """The started roles of one job: start, watch, stop."""

    def __init__(self, launcher: Launcher, roles: Sequence[Role], command: Sequence[str], workers: int,
                 servers: int, port: int, flag: _SignalFlag):
        self.launcher, self.roles, self.command, self.port, self.flag = launcher, list(roles), command, port, flag
        self.workers, self.servers = workers, servers
        self.procs: List[RoleProcess] = []

    def start(self) -> None:
        root = self.roles[0].host.address
        for role in self.roles:
            if self.flag.received:
                return
            env = dmlc_env(role.kind, self.workers, self.servers, self.port, root, base={},
                           node_host=role.host.address)
            self.procs.append(self.launcher.start(role, role_argv(role.kind, self.command), env,
                                                  capture=role.kind != "worker"))

    def _failure(self, rp: RoleProcess, rc: int) -> JobResult:
        if rp.role.kind == "scheduler" and rp.reader is not None and "bind failed" in rp.reader.tail:
            return JobResult(2, f"the scheduler on {rp.role.host.name} could not bind {rp.role.host.address}:"
                                f"{self.port}: the port is in use (choose another --port)")
        if rp.role.kind == "worker":
            detail = " (its message is above)"
        else:
            last = rp.reader.last_line() if rp.reader is not None else ""
            detail = f": {last}" if last else ""
        return JobResult(rc if rc > 0 else 128 - rc, f"{rp.role} {_exit_text(rc)}{detail}")

    def watch(self, timeout: Optional[float], finish_grace: float, poll: float = 0.1) -> Optional[JobResult]:
        """Until every worker ended (JobResult 0), a role failed, ``timeout`` passed (124) or a stop signal
        arrived (None)."""
        t0, helper_done = time.time(), None
        while True:
            if self.flag.received:
                return None
            for rp in self.procs:
                rc = rp.poll()
                if rc is None or rp.seen:
                    continue
                rp.seen = True
                if rc != 0:
                    return self._failure(rp, rc)
                if rp.role.kind != "worker" and helper_done is None:
                    helper_done = (time.time(), rp)
            workers = [rp for rp in self.procs if rp.role.kind == "worker"]
            if len(workers) == self.workers and all(rp.seen for rp in workers):
                return JobResult(0)
            if helper_done is not None and time.time() - helper_done[0] > finish_grace:
                left = next(rp for rp in workers if not rp.seen)
                return JobResult(1, f"{helper_done[1].role} ended, but {left.role} was still running "
                                    f"{finish_grace:g} s later")
            if timeout is not None and time.time() - t0 > timeout:
                return JobResult(124, f"the job did not finish within {timeout:g} s")
            time.sleep(poll)

    def stop(self, grace: float) -> None:
        """SIGTERM to every role (its process group), SIGKILL to what is left after ``grace`` seconds; reaps all."""
        for rp in self.procs:
            if rp.poll() is None:
                self.launcher.signal(rp, signal.SIGTERM)
        deadline = time.time() + grace
        while time.time() < deadline and any(rp.poll() is None for rp in self.procs):
            time.sleep(0.05)
        for rp in self.procs:
            if rp.poll() is None:
                self.launcher.signal(rp, signal.SIGKILL)
        for rp in self.procs:
            try:
                rp.proc.wait(10)
            except subprocess.TimeoutExpired:
                _killpg(rp.proc.pid, signal.SIGKILL)
                rp.proc.wait()
            self.launcher.reaped(rp)
        self.launcher.finish()


def run_job(command: Sequence[str], workers: int, servers: int = 1, port: Optional[int] = None,
            hosts: Optional[Sequence[Host]] = None, launcher: Optional[str] = None,
            ssh_command: Optional[str] = None, timeout: Optional[float] = None, stop_grace: float = 5.0,
            finish_grace: float = 60.0) -> JobResult:
    """Run the job to its end; a :class:`JobResult`. SIGINT raises KeyboardInterrupt and SIGTERM / SIGHUP
    :class:`LaunchStopped`, after every role was stopped. Bad arguments (hosts, busy port) are ValueErrors
    before anything starts.

    ``hosts``: default this machine (127.0.0.1); ``launcher``: default ``ssh`` when hosts are given, else
    ``local``; ``ssh_command``: the ssh client and its options (default :data:`DEFAULT_SSH`)."""
    if workers < 1 or servers < 1:
        raise ValueError(f"launch needs --workers >= 1 and --servers >= 1, got {workers} and {servers}")
    cmd = split_command(command)
    name = launcher or ("ssh" if hosts else "local")
    la = LAUNCHERS.lookup(name, "--launcher")(ssh_command=ssh_command)
    hosts = list(hosts) if hosts else [Host("127.0.0.1", "127.0.0.1")]
    la.check_hosts(hosts)
    root = hosts[0].address
    port = la.default_port(root) if port is None else int(port)
    la.check_port(root, port)
    roles = plan_roles(hosts, workers, servers)
    with _SignalFlag() as flag:
        job = Job(la, roles, cmd, workers, servers, port, flag)
        result = None
        try:
            job.start()
            result = job.watch(timeout, finish_grace)
        finally:
            ok = result is not None and result.code == 0
            if ok:           # the scheduler and the servers end by themselves once the workers are done
                deadline = time.time() + 20.0
                while time.time() < deadline and any(rp.poll() is None for rp in job.procs) and not flag.received:
                    time.sleep(0.05)
            job.stop(stop_grace)
    if result is None:
        sig = signal.Signals(flag.received)
        if sig == signal.SIGINT:
            raise KeyboardInterrupt
        raise LaunchStopped(f"launch: stopped by {sig.name}; every role of the job was stopped", 128 + int(sig))
    return result


def launch(command: Sequence[str], workers: int, servers: int = 1, port: Optional[int] = None,
           timeout: Optional[float] = None, stop_grace: float = 5.0, **kwargs) -> int:
    """:func:`run_job` for library callers: the exit code, with the reason of a failure printed to stderr."""
    res = run_job(command, workers, servers, port=port, timeout=timeout, stop_grace=stop_grace, **kwargs)
    if res.code:
        print(f"launch: {res.reason}", file=sys.stderr)
    return res.code
