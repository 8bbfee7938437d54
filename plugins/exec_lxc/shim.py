"""Per-container shim of the exec_lxc driver.

Standalone on purpose: stdlib only, no dockyard imports, and as few imports as
possible (it starts with ``python -I -S`` and every module costs milliseconds).
Started by the driver as::

    python -I -S shim.py STATEDIR LXCPATH NAME LOGPATH FLAGS READYFD [KEY=VALUE...] -- ARGV...

FLAGS is a string of letters: ``t`` tty, ``i`` open stdin, ``o`` stdin once.
LOGPATH ``-`` means no log (``--log-driver none``).  KEY=VALUE options:
``log-max-size`` (bytes, 0 = never rotate) and ``log-max-files`` (see ``jsonfile``).
The driver runs byte-compiled copies of this file and of ``dockyard/jsonfile.py``
from one directory (a script's bytecode is never cached by the interpreter, and
compiling it costs more than starting Python); the shim imports the latter as
the top-level module ``jsonfile``.

The shim forks once more (the driver already started it in a new session), so it
never belongs to the daemon's session and survives the daemon.  It

* owns the container's stdio: pipes, or a pty for a tty container;
* forks ONE single-threaded monitor child that loads liblxc through ctypes and
  waits on a pipe; ``{"cmd":"start"}`` makes it call ``start()`` (not
  daemonized, the app is PID 1, exact exit status from ``error_num``);
* writes the json-file log at LOGPATH, rotating it (``jsonfile.JsonLogWriter``);
* serves ``attach.sock`` in STATEDIR (see ``Client`` below for the protocol);
* on exit writes ``STATEDIR/exit`` (tmp + rename), answers waiters, drains and
  closes attach connections, then exits.

Connection protocol (internal to the plugin): the client sends ONE line of JSON
(a flat object).  Either an attach header ``{"stdin":b,"stdout":b,"stderr":b}``
answered by one byte ``+`` after which output flows as Docker stdcopy frames
(raw bytes with a tty) and bytes sent by the client are the container's stdin;
or a command ``{"cmd":"start"|"wait"|"resize"|"shutdown", ...}`` answered by
one line of JSON, after which the shim closes the connection.
"""

import os
import sys
import time
from select import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, epoll

import _signal
import _socket

sys.path.insert(0, os.path.dirname(__file__))  # -I leaves the script's directory out of sys.path
from jsonfile import JsonLogWriter, jstr, rfc3339  # noqa: E402 - the compiled copy beside this one

BUF = 65536
CLIENT_HIGH = 4 << 20      # stop reading the container's output above this per client
STDIN_HIGH = 1 << 20       # stop reading clients' stdin above this
DRAIN_TIMEOUT = 60.0       # after exit, give slow attach clients this long to read


# --------------------------------------------------------------------------- tiny JSON


def jdump(d):
    out = []
    for k, v in d.items():
        if v is True:
            v = "true"
        elif v is False:
            v = "false"
        elif v is None:
            v = "null"
        elif isinstance(v, str):
            v = jstr(v)
        else:
            v = str(v)
        out.append('"%s":%s' % (k, v))
    return "{" + ",".join(out) + "}"


def jparse(s):
    """Parse a flat JSON object of strings, ints, bools and null (what the driver sends)."""
    s = s.strip()
    if not (s.startswith("{") and s.endswith("}")):
        raise ValueError("not an object")
    i, n, res = 1, len(s) - 1, {}

    def ws(i):
        while i < n and s[i] in " \t\r\n":
            i += 1
        return i

    def string(i):
        assert s[i] == '"'
        i += 1
        buf = []
        while s[i] != '"':
            if s[i] == "\\":
                c = s[i + 1]
                if c == "u":
                    buf.append(chr(int(s[i + 2:i + 6], 16)))
                    i += 6
                    continue
                buf.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(c, c))
                i += 2
            else:
                buf.append(s[i])
                i += 1
        return "".join(buf), i + 1

    i = ws(i)
    while i < n:
        key, i = string(i)
        i = ws(i)
        if s[i] != ":":
            raise ValueError("expected :")
        i = ws(i + 1)
        if s[i] == '"':
            val, i = string(i)
        else:
            j = i
            while j < n and s[j] not in ", \t\r\n}":
                j += 1
            tok = s[i:j]
            val = {"true": True, "false": False, "null": None}[tok] if tok in ("true", "false", "null") \
                else (float(tok) if "." in tok else int(tok))
            i = j
        res[key] = val
        i = ws(i)
        if i < n and s[i] == ",":
            i = ws(i + 1)
    return res


def write_atomic(path, text):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def read_text(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while True:
            b = os.read(fd, BUF)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(fd)


def decode_status(st):
    """liblxc error_num -> docker exit code (exited: code<<8, killed: sig<<8|0x7f)."""
    if (st & 0x7F) == 0x7F:
        return 128 + ((st >> 8) & 0x7F)
    if st & 0x7F:   # plain wait status of a signalled process
        return 128 + (st & 0x7F)
    return (st >> 8) & 0xFF


def lxc_error(statedir):
    """The most useful line(s) of lxc.log for an error message."""
    text = read_text(statedir + "/lxc.log") or ""
    lines = [ln for ln in text.splitlines() if " ERROR " in ln]
    if not lines:
        lines = [ln for ln in text.splitlines() if ln.strip()][-3:]
    msgs = []
    for ln in lines:
        # "lxc <name> <date> ERROR  start - ../src/lxc/start.c:func:123 - message"
        msg = ln.split(" - ", 2)[-1].strip() if " - " in ln else ln.strip()
        if msg and msg not in msgs:
            msgs.append(msg)
    return "; ".join(msgs[:4]) or "lxc start failed (no details in lxc.log)"


# --------------------------------------------------------------------------- monitor child


def monitor(statedir, lxcpath, name, args, go_r, stdio, tty):
    """Runs in the forked child: becomes LXC's monitor process for the container."""
    try:
        if tty:
            os.setsid()
            import fcntl
            fcntl.ioctl(stdio[0], 0x540E, 0)    # TIOCSCTTY
        for i, fd in enumerate(stdio):
            if fd != i:
                os.dup2(fd, i, True)
        for fd in set(stdio):
            if fd > 2:
                os.close(fd)
        for sig in (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGHUP, _signal.SIGINT, _signal.SIGTERM):
            _signal.signal(sig, _signal.SIG_DFL)
        import ctypes
        lib = ctypes.CDLL("liblxc.so.1")
        vp = ctypes.c_void_p

        class C(ctypes.Structure):
            _fields_ = [(n, vp) for n in ("name", "configfile", "pidfile", "slock", "privlock")] + [
                ("numthreads", ctypes.c_int), ("lxc_conf", vp), ("error_string", ctypes.c_char_p),
                ("error_num", ctypes.c_int), ("daemonize", ctypes.c_bool), ("config_path", ctypes.c_char_p)] + [
                (n, vp) for n in ("is_defined", "state", "is_running", "freeze", "unfreeze", "init_pid",
                                  "load_config", "start", "startl", "stop", "want_daemonize",
                                  "want_close_all_fds")]

        P = ctypes.POINTER(C)
        lib.lxc_container_new.restype = P
        lib.lxc_container_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        c = lib.lxc_container_new(name.encode(), lxcpath.encode())
        if not c:
            raise OSError("lxc_container_new failed")
        setter = ctypes.CFUNCTYPE(ctypes.c_bool, P, ctypes.c_bool)
        setter(c.contents.want_daemonize)(c, False)
        setter(c.contents.want_close_all_fds)(c, True)
        argv_c = (ctypes.c_char_p * (len(args) + 1))(*[a.encode() for a in args], None)
        start = ctypes.CFUNCTYPE(ctypes.c_bool, P, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p))(c.contents.start)
        go = os.read(go_r, 1)          # blocks until the shim says start (or EOF: never start)
        os.close(go_r)
        if go != b"g":
            os._exit(0)
        ok = start(c, 0, argv_c)
        st = c.contents.error_num
        write_atomic(statedir + "/result", "%d %d\n" % (1 if ok else 0, st))
    except BaseException as exc:  # noqa: BLE001 - report whatever went wrong
        try:
            write_atomic(statedir + "/result", "0 -1 %s\n" % (exc,))
        except OSError:
            pass
    os._exit(0)


# --------------------------------------------------------------------------- shim


class Client:
    __slots__ = ("sock", "fd", "hdr", "kind", "out", "want", "stdin", "rd_open", "mask", "closing")

    def __init__(self, sock):
        self.sock = sock
        self.fd = sock.fileno()
        self.hdr = b""
        self.kind = None           # None (header pending), "attach", "cmd"
        self.out = bytearray()
        self.want = (False, False, False)   # index by stream number 1, 2
        self.stdin = False
        self.rd_open = True
        self.mask = 0
        self.closing = False       # close once out is flushed


class Shim:
    def __init__(self, statedir, lxcpath, name, log_path, flags, args, log_max_size=0, log_max_files=1):
        self.statedir = statedir
        self.lxcpath = lxcpath
        self.name = name
        self.log_path = log_path       # "" or "-": no log
        self.log_max_size = log_max_size
        self.log_max_files = log_max_files
        self.tty = "t" in flags
        self.open_stdin = "i" in flags
        self.stdin_once = "o" in flags
        self.args = args
        self.ep = None
        self.handlers = {}
        self.clients = {}
        self.pid = 0
        self.started_ns = 0
        self.state = "created"     # created, starting, running, finished
        self.start_waiters = []
        self.waiters = []
        self.exit_line = None
        self.child_done = False
        self.child_status = None
        self.outs = {}             # fd -> stream number (1, 2) for output fds still open
        self.out_paused = False
        self.stdin_fd = -1
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self.stdin_once_used = False
        self.logger = None         # JsonLogWriter
        self.listen = None
        self.deadline = None
        self.master = -1
        self.crlf_tail = b""
        self.exec_pending = False
        self.exec_since = 0.0
        st = os.stat("/proc/self/exe")
        self.self_exe = (st.st_dev, st.st_ino)

    # -- setup -----------------------------------------------------------------

    def setup(self, ready_fd):
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        if self.tty:
            master, slave = os.openpty()
            child_stdio = (slave, slave, slave)
            self.master = master
            mine = [master]
            theirs = [slave]
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            if self.open_stdin:
                in_r, in_w = os.pipe()
                self.stdin_fd = in_w
            else:
                in_r, in_w = devnull, -1
            child_stdio = (in_r, out_w, err_w)
            mine = [out_r, err_r] + ([in_w] if in_w >= 0 else [])
            theirs = [out_w, err_w] + ([in_r] if in_w >= 0 else [])
        go_r, go_w = os.pipe()
        mpid = os.fork()
        if mpid == 0:
            for fd in mine + [go_w, ready_fd, devnull]:
                if fd not in child_stdio:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            monitor(self.statedir, self.lxcpath, self.name, self.args, go_r, child_stdio, self.tty)
            os._exit(0)
        self.mpid = mpid
        self.go_w = go_w
        os.close(go_r)
        for fd in theirs:
            os.close(fd)
        os.close(devnull)
        for fd in mine:
            os.set_inheritable(fd, False)
            os.set_blocking(fd, False)
        os.set_inheritable(go_w, False)

        self.ep = epoll()
        self.pidfd = os.pidfd_open(mpid)
        self.reg(self.pidfd, EPOLLIN, self.on_child)
        self.watch_stdio(*(() if self.tty else (out_r, err_r)))
        self.fifo = os.open("pid.fifo", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.reg(self.fifo, EPOLLIN, self.on_fifo)
        if self.log_path not in ("", "-"):
            self.logger = JsonLogWriter(self.log_path, self.log_max_size, self.log_max_files)

        try:
            os.unlink("attach.sock")
        except FileNotFoundError:
            pass
        ls = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        ls.bind("attach.sock")
        ls.listen(128)
        ls.setblocking(False)
        self.listen = ls
        self.reg(ls.fileno(), EPOLLIN, self.on_accept)
        write_atomic("shim.pid", "%d\n" % os.getpid())
        os.write(ready_fd, b"ready %d %d\n" % (os.getpid(), mpid))
        os.close(ready_fd)

    def reg(self, fd, mask, handler):
        self.handlers[fd] = handler
        self.ep.register(fd, mask)

    def unreg(self, fd):
        self.handlers.pop(fd, None)
        try:
            self.ep.unregister(fd)
        except (OSError, ValueError):
            pass

    # -- main loop -------------------------------------------------------------

    def run(self):
        ep = self.ep
        handlers = self.handlers
        while True:
            if self.state == "finished" and not self.clients:
                break
            timeout = -1
            if self.deadline is not None:
                timeout = max(0.0, self.deadline - time.monotonic())
            if self.exec_pending:
                t = self.exec_poll_timeout()
                timeout = t if timeout < 0 else min(timeout, t)
            events = ep.poll(timeout)
            if self.exec_pending:
                self.check_exec()
            if not events and self.deadline is not None and time.monotonic() >= self.deadline:
                self.on_deadline()
                continue
            for fd, ev in events:
                h = handlers.get(fd)
                if h is not None:
                    try:
                        h(fd, ev)
                    except Exception as exc:  # noqa: BLE001 - never let one bad event kill the shim
                        self.report(exc)
                        c = self.clients.get(fd)
                        if c is not None:
                            self.drop(c)
        self.cleanup_files()

    @staticmethod
    def report(exc):
        tb, where = exc.__traceback__, []
        while tb is not None:
            where.append("%s:%d" % (tb.tb_frame.f_code.co_name, tb.tb_lineno))
            tb = tb.tb_next
        sys.stderr.write("shim: %r at %s\n" % (exc, " > ".join(where)))
        sys.stderr.flush()

    def on_deadline(self):
        self.deadline = None
        if self.state != "finished":
            # the child exited but output never reached EOF: give up on it
            for fd in list(self.outs):
                self.close_output(fd)
            self.maybe_finish()
        else:
            for c in list(self.clients.values()):
                self.drop(c)

    # -- container output ------------------------------------------------------

    def on_output(self, fd, ev):
        stream = self.outs.get(fd)
        if stream is None:
            return
        try:
            data = os.read(fd, BUF)
        except BlockingIOError:
            return
        except OSError:   # EIO on a pty master once the slave side is gone
            data = b""
        if not data:
            self.close_output(fd)
            self.maybe_finish()
            return
        now = time.time_ns()
        if self.tty:
            data = self.crlf(data)
            if not data:
                return
        self.log(stream, data, now)
        if self.tty:
            frame = data
        else:
            frame = bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data
        high = False
        for c in self.clients.values():
            if c.kind == "attach" and c.want[stream] and not c.closing:
                c.out += frame
                self.update(c)
                if len(c.out) > CLIENT_HIGH:
                    high = True
        if high and not self.out_paused:
            self.out_paused = True
            for ofd in self.outs:
                self.ep.modify(ofd, 0)
            self.master_mask()

    def watch_stdio(self, out_r=-1, err_r=-1):
        """Register the process's output (the pty master, or the stdout and stderr
        pipes) and its stdin with the event loop."""
        if self.tty:
            self.outs[self.master] = 1
            self.reg(self.master, EPOLLIN, self.on_master)
        else:
            self.outs[out_r] = 1
            self.outs[err_r] = 2
            self.reg(out_r, EPOLLIN, self.on_output)
            self.reg(err_r, EPOLLIN, self.on_output)
            if self.stdin_fd >= 0:
                self.reg(self.stdin_fd, 0, self.on_stdin_writable)

    def on_master(self, fd, ev):
        if ev & EPOLLOUT:
            self.flush_stdin()
        if ev & (EPOLLIN | EPOLLHUP | EPOLLERR):
            self.on_output(fd, ev)

    def master_mask(self):
        if self.master < 0 or self.master not in self.handlers:
            return
        mask = (0 if self.out_paused or self.master not in self.outs else EPOLLIN) | \
            (EPOLLOUT if self.stdin_buf else 0)
        try:
            self.ep.modify(self.master, mask)
        except OSError:
            pass

    def crlf(self, data):
        # LXC forces ONLCR on the outer tty, so "\n" written in the container arrives
        # as "\r\r\n"; the start-host hook clears it, this is the safety net.
        data = self.crlf_tail + data
        self.crlf_tail = b""
        if b"\r\r\n" in data:
            data = data.replace(b"\r\r\n", b"\r\n")
        return data

    def close_output(self, fd):
        if fd in self.outs:
            stream = self.outs.pop(fd)
            self.unreg(fd)
            os.close(fd)
            if fd == self.master:
                self.master = -1
                self.stdin_buf.clear()
            if self.logger is not None:
                self.logger.flush(stream, time.time_ns())

    def maybe_resume_output(self):
        if self.out_paused and all(len(c.out) <= CLIENT_HIGH // 2 for c in self.clients.values()):
            self.out_paused = False
            for ofd in self.outs:
                self.ep.modify(ofd, EPOLLIN)
            self.master_mask()

    def log(self, stream, data, now):
        if self.logger is not None:
            self.logger.write(stream, data, now)

    # -- container stdin -------------------------------------------------------

    def stdin_write(self, data):
        if self.tty:
            fd = self.master
        else:
            fd = self.stdin_fd
        if fd < 0 or self.stdin_closing:
            return
        self.stdin_buf += data
        self.flush_stdin()

    def flush_stdin(self):
        fd = self.master if self.tty else self.stdin_fd
        if fd < 0:
            return
        while self.stdin_buf:
            try:
                n = os.write(fd, self.stdin_buf[:BUF])
            except BlockingIOError:
                break
            except OSError:
                self.stdin_buf.clear()
                self.close_stdin_now()
                return
            del self.stdin_buf[:n]
        if self.tty:
            self.master_mask()
        else:
            try:
                self.ep.modify(fd, EPOLLOUT if self.stdin_buf else 0)
            except OSError:
                pass
        if not self.stdin_buf and self.stdin_closing:
            self.close_stdin_now()
        self.update_stdin_clients()

    def on_stdin_writable(self, fd, ev):
        if ev & (EPOLLERR | EPOLLHUP):     # nobody reads the container's stdin any more
            self.stdin_buf.clear()
            self.close_stdin_now()
            self.update_stdin_clients()
            return
        self.flush_stdin()

    def close_stdin(self):
        """stdin EOF for the container (stdin_once), after pending bytes."""
        if self.stdin_closing:
            return
        if self.tty:
            # Docker never closes a tty's stdin for an attach's EOF (moby's CloseStdin
            # is for non-tty only): the docker CLI half-closes when it detaches with
            # ctrl-p ctrl-q, and the shell must live on.  The user's ^D still reaches it.
            return
        self.stdin_closing = True
        if not self.stdin_buf:
            self.close_stdin_now()

    def close_stdin_now(self):
        if not self.tty and self.stdin_fd >= 0:
            self.unreg(self.stdin_fd)
            os.close(self.stdin_fd)
            self.stdin_fd = -1
        self.stdin_closing = True

    def update_stdin_clients(self):
        for c in self.clients.values():
            if c.stdin:
                self.update(c)

    # -- clients ---------------------------------------------------------------

    def on_accept(self, fd, ev):
        while True:
            try:
                cfd, _ = self.listen._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock = _socket.socket(fileno=cfd)
            sock.setblocking(False)
            c = Client(sock)
            self.clients[c.fd] = c
            self.handlers[c.fd] = self.on_client
            c.mask = EPOLLIN
            self.ep.register(c.fd, EPOLLIN)

    def update(self, c):
        mask = 0
        if c.rd_open and not c.closing:
            if c.kind is None or not c.stdin or (len(self.stdin_buf) < STDIN_HIGH and not self.stdin_closing):
                mask |= EPOLLIN
        if c.out:
            mask |= EPOLLOUT
        if mask != c.mask:
            c.mask = mask
            self.ep.modify(c.fd, mask)

    def drop(self, c):
        self.clients.pop(c.fd, None)
        self.unreg(c.fd)
        try:
            c.sock.close()
        except OSError:
            pass
        # a client that went away without a half-close (detach keys, a dropped
        # connection) leaves stdin open, as Docker does; only its EOF closes it
        self.maybe_resume_output()

    def send(self, c):
        while c.out:
            try:
                n = c.sock.send(c.out[:1 << 20])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.drop(c)
                return
            del c.out[:n]
        if not c.out and c.closing:
            try:
                c.sock.shutdown(_socket.SHUT_WR)
            except OSError:
                pass
            self.drop(c)
            return
        self.update(c)
        self.maybe_resume_output()

    def reply(self, c, obj):
        c.out += (jdump(obj) + "\n").encode()
        c.closing = True
        self.send(c)

    def on_client(self, fd, ev):
        c = self.clients.get(fd)
        if c is None:
            return
        if ev & EPOLLOUT:
            self.send(c)
            if fd not in self.clients:
                return
        hup = ev & (EPOLLHUP | EPOLLERR)
        if (ev & EPOLLIN or hup) and c.rd_open:
            while fd in self.clients and c.rd_open:
                try:
                    data = c.sock.recv(BUF)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    data = b""
                if data:
                    self.client_data(c, data)
                    if not hup:
                        break
                else:
                    self.client_eof(c, hangup=bool(hup))
        if fd not in self.clients:
            return
        if hup:
            self.drop(c)
        else:
            self.update(c)

    def client_eof(self, c, hangup=False):
        """EOF from a client: a half-close (shutdown SHUT_WR) is stdin EOF; a full
        close (HUP: both directions gone) is a client leaving, which is not."""
        c.rd_open = False
        if c.kind is None:
            self.drop(c)
            return
        if c.stdin and self.stdin_once and not self.stdin_once_used and not hangup:
            self.stdin_once_used = True
            self.close_stdin()
        c.stdin = False

    def client_data(self, c, data):
        if c.kind is None:
            c.hdr += data
            i = c.hdr.find(b"\n")
            if i < 0:
                if len(c.hdr) > 65536:
                    self.drop(c)
                return
            line, rest = c.hdr[:i], c.hdr[i + 1:]
            c.hdr = b""
            try:
                req = jparse(line.decode())
            except Exception:  # noqa: BLE001
                self.drop(c)
                return
            self.handle_header(c, req)
            if rest and c.fd in self.clients and c.stdin:
                self.stdin_write(rest)
        elif c.stdin:
            self.stdin_write(data)

    def handle_header(self, c, req):
        cmd = req.get("cmd")
        if cmd is None:
            if self.state == "finished":
                self.drop(c)
                return
            c.kind = "attach"
            c.want = (False, bool(req.get("stdout")), bool(req.get("stderr")) and not self.tty)
            if self.tty and req.get("stderr") and not req.get("stdout"):
                c.want = (False, True, False)
            c.stdin = bool(req.get("stdin")) and self.open_stdin and not self.stdin_closing
            c.out += b"+"
            self.send(c)
            return
        c.kind = "cmd"
        if cmd == "start":
            if self.state == "created":
                self.state = "starting"
                self.start_waiters.append(c)
                os.write(self.go_w, b"g")
                os.close(self.go_w)
                self.go_w = -1
            elif self.state == "starting":
                self.start_waiters.append(c)
            elif self.started_ns:
                self.reply(c, {"ok": True, "pid": self.pid, "started_ns": self.started_ns})
            else:
                self.reply(c, {"ok": False, "error": self.start_error or "container is not running"})
        elif cmd == "wait":
            if self.exit_line is not None:
                c.out += self.exit_line.encode()
                c.closing = True
                self.send(c)
            else:
                self.waiters.append(c)
        elif cmd == "resize":
            ok = self.resize(int(req.get("h") or 0), int(req.get("w") or 0))
            self.reply(c, {"ok": ok})
        elif cmd == "shutdown":
            if self.state == "created":
                os.close(self.go_w)     # the monitor child reads EOF and exits without starting
                self.go_w = -1
                self.state = "shutdown"
                self.reply(c, {"ok": True})
            else:
                self.reply(c, {"ok": False, "error": "container was started"})
        elif cmd == "ping":
            self.reply(c, {"ok": True, "state": self.state, "pid": self.pid})
        elif cmd == "exec":
            self.fork_exec(c, req)
        else:
            self.reply(c, {"ok": False, "error": "unknown command"})

    def fork_exec(self, c, req):
        """``docker exec``: fork an exec shim (see ExecShim) that takes this
        connection over as its stream.  Forking this already-initialised
        interpreter costs about a millisecond, a new interpreter ten or more."""
        if self.state != "running" or not self.pid or self.child_done:
            self.reply(c, {"ok": False, "error": "container is not running", "conflict": True})
            return
        # The forked child takes the connection over: forget it here first (an
        # epoll registration outlives close() while another process holds the socket).
        self.clients.pop(c.fd, None)
        self.unreg(c.fd)
        try:
            pid = os.fork()
        except OSError as exc:
            self.clients[c.fd] = c
            self.handlers[c.fd] = self.on_client
            c.mask = 0
            self.ep.register(c.fd, 0)
            self.reply(c, {"ok": False, "error": "cannot fork an exec shim: %s" % exc})
            return
        if pid == 0:
            code = 1
            try:
                if os.fork() == 0:      # the exec shim proper: never a child of this shim
                    run_exec(self, c, req)
                code = 0
            except BaseException as exc:  # noqa: BLE001
                self.report(exc)
            os._exit(code)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        c.sock.close()

    def resize(self, h, w):
        if not self.tty or self.master < 0 or h <= 0 or w <= 0:
            return False
        import fcntl
        bo = sys.byteorder
        ws = h.to_bytes(2, bo) + w.to_bytes(2, bo) + bytes(4)
        try:
            fcntl.ioctl(self.master, 0x5414, ws)   # TIOCSWINSZ
        except OSError:
            return False
        return True

    # -- lifecycle -------------------------------------------------------------

    start_error = ""

    def on_fifo(self, fd, ev):
        # The start-host hook reports the init pid.  The init has not exec'd the
        # app yet: it still has to pass LXC's last sync steps, and SIGKILLing it
        # in that window leaves liblxc's monitor blocked on its sync socket
        # forever.  So "started" is only reported once the exec is seen.
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        for tok in data.split():
            try:
                pid = int(tok)
            except ValueError:
                continue
            if pid > 0 and not self.pid:
                self.pid = pid
                self.exec_since = time.monotonic()
                self.exec_pending = True
                self.check_exec()

    def check_exec(self):
        """Has the init exec'd the app (its /proc/PID/exe is no longer our interpreter)?"""
        try:
            st = os.stat("/proc/%d/exe" % self.pid)
        except OSError:
            return      # exited already (or a zombie): on_child settles it
        if (st.st_dev, st.st_ino) != self.self_exe:
            self.mark_started()

    def exec_poll_timeout(self):
        elapsed = time.monotonic() - self.exec_since
        if elapsed < 0.02:
            return 0.0002
        if elapsed < 0.5:
            return 0.001
        return 0.01

    def mark_started(self):
        if not self.exec_pending:
            return
        self.exec_pending = False
        pid = self.pid
        self.started_ns = time.time_ns()
        if self.state == "starting":
            self.state = "running"
        write_atomic("started", jdump({"pid": pid, "started_ns": self.started_ns,
                                       "started_at": rfc3339(self.started_ns),
                                       "monitor": self.mpid}) + "\n")
        waiters, self.start_waiters = self.start_waiters, []
        for c in waiters:
            if c.fd in self.clients:
                self.reply(c, {"ok": True, "pid": pid, "started_ns": self.started_ns})

    def on_child(self, fd, ev):
        try:
            os.waitpid(self.mpid, 0)  # reap only: the exit status comes from liblxc's error_num
        except ChildProcessError:
            pass
        self.unreg(self.pidfd)
        os.close(self.pidfd)
        self.child_done = True
        if self.state == "shutdown":
            # never started: no exit file, just go away
            self.state = "finished"
            self.close_listen()
            for c in list(self.clients.values()):
                if c.kind == "attach":
                    c.closing = True
                    self.send(c)
                elif c not in self.waiters and not c.closing:
                    self.drop(c)
            for c in self.waiters:
                if c.fd in self.clients:
                    self.drop(c)     # no exit status: the process never ran
            self.waiters = []
            self.deadline = time.monotonic() + 5.0
            return
        res = (read_text(self.statedir + "/result") or "").split(None, 2)
        ok = len(res) >= 2 and res[0] == "1"
        st = int(res[1]) if len(res) >= 2 and res[1].lstrip("-").isdigit() else -1
        self.child_status = (ok, st, res[2].strip() if len(res) > 2 else "")
        if ok and self.pid:
            self.mark_started()     # the app ran (and exited before we saw its exec)
        self.exec_pending = False
        if not ok:
            # start waiters get the reason from maybe_finish, after the exit file exists
            self.start_error = self.child_status[2] or lxc_error(self.statedir)
        # output fds should reach EOF now; don't wait forever for them
        self.deadline = time.monotonic() + 2.0
        self.maybe_finish()

    def exit_info(self):
        """(docker exit code, OOM-killed, error) of the finished main process."""
        ok, st, extra = self.child_status
        oom = False
        text = read_text("oom")
        if text:
            try:
                oom = int(text.split()[0]) > 0
            except (ValueError, IndexError):
                oom = False
        error = ""
        if ok:
            code = decode_status(st)
        else:
            error = self.start_error or lxc_error(self.statedir)
            low = error.lower()
            if "no such file" in low and "exec" in low:
                code = 127
            elif "permission denied" in low and "exec" in low:
                code = 126
            else:
                code = 255
        return code, oom, error

    def maybe_finish(self):
        if self.state == "finished" or not self.child_done or self.outs:
            return
        code, oom, error = self.exit_info()
        now = time.time_ns()
        info = {"exit_code": code, "oom_killed": oom, "finished_ns": now, "finished_at": rfc3339(now),
                "started": bool(self.started_ns), "error": error}
        self.exit_line = jdump(info) + "\n"
        write_atomic("exit", self.exit_line)
        self.state = "finished"
        self.close_listen()
        for c in list(self.clients.values()):
            if c in self.waiters:
                continue
            if c.kind == "cmd" and c in self.start_waiters:
                continue
            c.closing = True
            self.send(c)
        pending, self.start_waiters = self.start_waiters, []
        for c in pending:
            if c.fd in self.clients:
                self.reply(c, {"ok": False, "error": error or "the container exited before it was seen starting"})
        waiters, self.waiters = self.waiters, []
        for c in waiters:
            if c.fd in self.clients:
                c.out += self.exit_line.encode()
                c.closing = True
                self.send(c)
        for c in list(self.clients.values()):
            if c.kind is None:
                self.drop(c)
        self.deadline = time.monotonic() + DRAIN_TIMEOUT

    def close_listen(self):
        if self.listen is not None:
            self.unreg(self.listen.fileno())
            try:
                os.unlink("attach.sock")
            except OSError:
                pass
            self.listen.close()
            self.listen = None

    def cleanup_files(self):
        for f in ("shim.pid", "pid.fifo", "result"):
            try:
                os.unlink(f)
            except OSError:
                pass


# --------------------------------------------------------------------------- docker exec

#: struct lxc_container function pointers, in header order, up to ``attach`` (liblxc >= 4)
LXC_FUNCS = ("is_defined", "state", "is_running", "freeze", "unfreeze", "init_pid", "load_config", "start",
             "startl", "stop", "want_daemonize", "want_close_all_fds", "config_file_name", "wait",
             "set_config_item", "destroy", "save_config", "create", "createl", "rename", "reboot", "shutdown",
             "clear_config", "clear_config_item", "get_config_item", "get_running_config_item", "get_keys",
             "get_interfaces", "get_ips", "get_cgroup_item", "set_cgroup_item", "get_config_path",
             "set_config_path", "clone", "console_getfd", "console", "attach")
ATTACH_DEFAULT = 0x0000FFFF
ATTACH_SETGROUPS = 0x00200000
ATTACH_CLEAR_ENV = 1
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
TIOCSWINSZ = 0x5414
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_KEEP = []      # the forking shim's objects: never collected in an exec shim (their fds are gone)


def lxc_attach(name, lxcpath, exec_fn, stdio, uid, gid, groups, cwd):
    """liblxc ``attach()`` through ctypes; ``exec_fn()`` runs in the attached
    process (inside the container, after the uid/gid switch) and returns its exit
    code unless it execs.  Returns the attached pid, a child of the caller."""
    import ctypes
    vp, ci = ctypes.c_void_p, ctypes.c_int
    lib = ctypes.CDLL("liblxc.so.1")

    class C(ctypes.Structure):
        _fields_ = [(n, vp) for n in ("name", "configfile", "pidfile", "slock", "privlock")] + [
            ("numthreads", ci), ("lxc_conf", vp), ("error_string", ctypes.c_char_p),
            ("error_num", ci), ("daemonize", ctypes.c_bool), ("config_path", ctypes.c_char_p)] + [
            (n, vp) for n in LXC_FUNCS]

    class Options(ctypes.Structure):
        _fields_ = [("attach_flags", ci), ("namespaces", ci), ("personality", ctypes.c_long),
                    ("initial_cwd", ctypes.c_char_p), ("uid", ctypes.c_uint), ("gid", ctypes.c_uint),
                    ("env_policy", ci), ("extra_env_vars", vp), ("extra_keep_env", vp),
                    ("stdin_fd", ci), ("stdout_fd", ci), ("stderr_fd", ci), ("log_fd", ci),
                    ("lsm_label", ctypes.c_char_p), ("groups_size", ctypes.c_size_t), ("groups_list", vp)]

    P = ctypes.POINTER(C)
    lib.lxc_container_new.restype = P
    lib.lxc_container_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    c = lib.lxc_container_new(name.encode(), lxcpath.encode())
    if not c:
        raise OSError("lxc_container_new failed")
    fn_t = ctypes.CFUNCTYPE(ci, vp)

    def run(_payload):
        try:
            return int(exec_fn())
        except BaseException as exc:  # noqa: BLE001 - an exception here must not become exit 0
            try:
                os.write(2, ("exec failed: %r\n" % (exc,)).encode())
            except OSError:
                pass
            return 126

    cb = fn_t(run)
    o = Options()
    o.attach_flags = ATTACH_DEFAULT | (ATTACH_SETGROUPS if groups else 0)
    o.namespaces = -1
    o.personality = -1                  # LXC_ATTACH_DETECT_PERSONALITY
    o.initial_cwd = cwd.encode()
    o.uid, o.gid = uid, gid
    o.env_policy = ATTACH_CLEAR_ENV
    o.stdin_fd, o.stdout_fd, o.stderr_fd = stdio
    o.log_fd = -9                       # -EBADF
    glist = (ctypes.c_uint * max(1, len(groups)))(*groups)
    o.groups_size = len(groups)
    o.groups_list = ctypes.cast(glist, vp)
    pid = ctypes.c_int(0)
    attach = ctypes.CFUNCTYPE(ci, P, fn_t, vp, ctypes.POINTER(Options), ctypes.POINTER(ci))(c.contents.attach)
    ret = attach(c, cb, None, ctypes.byref(o), ctypes.byref(pid))
    if ret != 0 or pid.value <= 0:
        raise OSError("lxc attach failed (%d); see lxc.log" % ret)
    return pid.value


def exec_child(args, env, cwd, tty):
    """In the attached process: the last steps before execve, with Docker's
    (runc's) errors and exit codes: 127 for a command not found, 126 otherwise."""
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGHUP, _signal.SIGINT, _signal.SIGTERM,
                _signal.SIGQUIT):
        try:
            _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    try:
        os.chdir(cwd)
    except OSError as exc:
        return exec_fail('chdir to cwd ("%s") set in config.json failed: %s' % (cwd, _strerror(exc)), 126)
    envd = {}
    for item in env:
        k, sep, v = item.partition("=")
        if sep and k:
            envd[k] = v
    if "HOSTNAME" not in envd:
        envd["HOSTNAME"] = os.uname().nodename
    if tty and "TERM" not in envd:
        envd["TERM"] = "xterm"
    prog = args[0]
    if "/" in prog:
        candidates = [prog]
    else:
        candidates = [(d or ".") + "/" + prog for d in envd.get("PATH", DEFAULT_PATH).split(":")]
    denied = None
    first = None
    for path in candidates:
        try:
            os.execve(path, args, envd)
        except OSError as exc:
            if exc.errno in (2, 20):            # ENOENT, ENOTDIR: keep looking
                first = first or exc
                continue
            if exc.errno == 13:                 # EACCES: remember, keep looking (as execvp)
                denied = denied or exc
                continue
            first = exc
            break
    if denied is not None and (first is None or first.errno in (2, 20)):
        return exec_fail('exec: "%s": permission denied' % prog, 126)
    if first is None or first.errno in (2, 20):
        if "/" in prog:
            return exec_fail('exec: "%s": stat %s: no such file or directory' % (prog, prog), 127)
        return exec_fail('exec: "%s": executable file not found in $PATH' % prog, 127)
    return exec_fail('exec: "%s": %s' % (prog, _strerror(first)), 126)


def _strerror(exc):
    return (exc.strerror or str(exc)).lower()


def exec_fail(msg, code):
    try:
        os.write(2, ("OCI runtime exec failed: exec failed: unable to start container process: %s: unknown\n"
                     % msg).encode())
    except OSError:
        pass
    return code


class ExecShim(Shim):
    """One ``docker exec`` process, owned by a process forked from the
    container's shim: its stdio (pipes, or a pty allocated in the container's
    own devpts), its exit status (``exit`` in its state dir) and a socket
    (``attach.sock`` there) for ``wait`` and ``resize``.  Its output is never
    logged.  The connection the exec was requested on is its stream: after one
    JSON line (``{"ok":true,"pid":N}`` or ``{"ok":false,"error":...}``) it
    carries stdcopy frames (raw bytes with a tty) and takes stdin; a half-close
    is stdin EOF."""

    def __init__(self, parent, statedir, req):
        flags = ("t" if req.get("tty") else "") + ("i" if req.get("stdin") else "") + "o"
        Shim.__init__(self, statedir, parent.lxcpath, parent.name, "", flags, [])
        self.req = req
        self.init_pid = parent.pid
        self.exit_code = 255
        self.mpid = 0
        self.held_waiters = set()

    def log(self, stream, data, now):
        pass

    def crlf(self, data):
        return data

    def setup_exec(self, conn):
        req = self.req
        args = [a for a in (req.get("args") or "").split("\0")]
        if not args or not args[0]:
            raise ValueError("no command")
        env = [e for e in (req.get("env") or "").split("\0") if e]
        groups = [int(g) for g in (req.get("groups") or "").split(",") if g.strip()]
        cwd = req.get("cwd") or "/"
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        if self.tty:
            import fcntl
            master = os.open("/proc/%d/root/dev/pts/ptmx" % self.init_pid,
                             os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            h, w = int(req.get("h") or 24), int(req.get("w") or 80)
            bo = sys.byteorder
            fcntl.ioctl(master, TIOCSWINSZ, h.to_bytes(2, bo) + w.to_bytes(2, bo) + bytes(4))
            self.master = master
            stdio = (slave, slave, slave)
            mine, theirs = [master], [slave]
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            if self.open_stdin:
                in_r, in_w = os.pipe()
                self.stdin_fd = in_w
                mine, theirs = [out_r, err_r, in_w], [in_r, out_w, err_w]
            else:
                in_r = devnull
                mine, theirs = [out_r, err_r], [out_w, err_w]
            stdio = (in_r, out_w, err_w)
        self.ep = epoll()
        ls = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            os.unlink("attach.sock")
        except FileNotFoundError:
            pass
        ls.bind("attach.sock")
        ls.listen(16)
        ls.setblocking(False)
        self.listen = ls
        write_atomic("shim.pid", "%d\n" % os.getpid())
        tty = self.tty
        self.pid = lxc_attach(self.name, self.lxcpath, lambda: exec_child(args, env, cwd, tty), stdio,
                              int(req.get("uid") or 0), int(req.get("gid") or 0), groups, cwd)
        self.started_ns = time.time_ns()
        self.state = "running"
        for fd in theirs:
            os.close(fd)
        os.close(devnull)
        for fd in mine:
            os.set_blocking(fd, False)
        self.pidfd = os.pidfd_open(self.pid)
        self.reg(self.pidfd, EPOLLIN, self.on_child)
        self.watch_stdio(*(() if self.tty else (out_r, err_r)))
        self.reg(ls.fileno(), EPOLLIN, self.on_accept)
        c = Client(conn)
        c.kind = "attach"
        c.want = (False, True, not self.tty)
        c.stdin = self.open_stdin
        c.out += (jdump({"ok": True, "pid": self.pid, "shim": os.getpid()}) + "\n").encode()
        self.clients[c.fd] = c
        self.handlers[c.fd] = self.on_client
        c.mask = 0
        self.ep.register(c.fd, 0)
        self.send(c)

    def on_child(self, fd, ev):
        try:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            self.exit_code = 128 - code if code < 0 else code
        except ChildProcessError:
            self.exit_code = 255
        self.unreg(self.pidfd)
        os.close(self.pidfd)
        self.child_done = True
        self.deadline = time.monotonic() + 2.0
        self.maybe_finish()

    def exit_info(self):
        return self.exit_code, False, ""

    def maybe_finish(self):
        """Write ``exit``, then end the stream only once the exit code has been
        collected: a client asks for the exit code as soon as its stream ends.
        So the stream is held until a ``wait`` has been answered and its client
        has hung up (at most HOLD seconds when nobody asks)."""
        if self.state == "finished" or not self.child_done or self.outs:
            return
        now = time.time_ns()
        self.exit_line = jdump({"exit_code": self.exit_code, "oom_killed": False, "finished_ns": now,
                                "finished_at": rfc3339(now)}) + "\n"
        try:
            write_atomic("exit", self.exit_line)
        except OSError:
            pass        # the state dir is gone (container removed): waiters still get the line
        self.state = "finished"
        for c in list(self.clients.values()):
            if c.kind is None:
                self.drop(c)
        waiters, self.waiters = self.waiters, []
        for c in waiters:
            self.answer(c)
        if not self.released:
            self.deadline = time.monotonic() + self.HOLD

    HOLD = 0.3
    released = False

    def answer(self, c):
        if c.fd in self.clients:
            c.out += self.exit_line.encode()   # not closing: the waiter hangs up itself
            self.held_waiters.add(c.fd)
            self.send(c)

    def release_streams(self):
        if self.released:
            return
        self.released = True
        self.close_listen()
        for c in list(self.clients.values()):
            if c.fd not in self.held_waiters:
                c.closing = True
                self.send(c)
        self.deadline = time.monotonic() + DRAIN_TIMEOUT

    def drop(self, c):
        Shim.drop(self, c)
        if c.fd in self.held_waiters:
            self.held_waiters.discard(c.fd)
            if not self.held_waiters:
                self.release_streams()

    def cleanup_files(self):
        self.close_listen()
        Shim.cleanup_files(self)

    def on_deadline(self):
        if self.state == "finished" and not self.released:
            self.deadline = None
            self.release_streams()
            return
        Shim.on_deadline(self)

    def handle_header(self, c, req):
        if req.get("cmd") in ("exec", "start", "shutdown"):
            c.kind = "cmd"
            self.reply(c, {"ok": False, "error": "not supported by an exec shim"})
            return
        if req.get("cmd") == "wait" and self.exit_line is not None:
            c.kind = "cmd"
            self.answer(c)
            return
        Shim.handle_header(self, c, req)


def run_exec(parent, conn_client, req):
    """In the (double-)forked exec shim: drop everything of the container's
    shim except the connection, then serve the exec until it is over."""
    _KEEP.append(parent)
    _KEEP.append(conn_client)
    keep = {0, 1, 2, conn_client.fd}
    try:
        parent.ep.close()
    except (OSError, ValueError):
        pass
    if parent.listen is not None:
        parent.listen.close()
    for cl in parent.clients.values():
        if cl.fd not in keep:
            cl.sock.close()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    conn = conn_client.sock
    ex = None
    try:
        os.chdir(req["dir"])
        ex = ExecShim(parent, req["dir"], req)
        ex.setup_exec(conn)
    except BaseException as exc:  # noqa: BLE001 - report any failure to the driver
        Shim.report(exc)
        try:
            conn.setblocking(True)
            conn.sendall((jdump({"ok": False, "error": str(exc) or exc.__class__.__name__}) + "\n").encode())
        except OSError:
            pass
        os._exit(1)
    try:
        ex.run()
    except BaseException as exc:  # noqa: BLE001
        Shim.report(exc)
    os._exit(0)


def main():
    argv = sys.argv
    end = argv.index("--") if "--" in argv else -1
    options = dict(a.partition("=")[::2] for a in argv[7:end]) if end >= 7 else {}
    if end < 7 or len(argv) == end + 1 or set(options) - {"log-max-size", "log-max-files"}:
        sys.stderr.write("usage: shim.py STATEDIR LXCPATH NAME LOGPATH FLAGS READYFD [KEY=VALUE...] -- ARGV...\n")
        return 2
    statedir, lxcpath, name, log_path, flags, ready_fd = argv[1:7]
    args = argv[end + 1:]
    ready_fd = int(ready_fd)
    # The driver started us as a session leader; fork once more so that we are
    # not a session leader (never acquire a controlling tty) and get reparented.
    if os.fork():
        os._exit(0)
    os.chdir(statedir)
    _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    shim = Shim(statedir, lxcpath, name, log_path, flags.replace("-", ""), args,
                int(options.get("log-max-size") or 0), int(options.get("log-max-files") or 1))
    try:
        shim.setup(ready_fd)
    except BaseException as exc:  # noqa: BLE001
        sys.stderr.write("shim: setup failed: %r\n" % (exc,))
        try:
            os.write(ready_fd, b"error %s\n" % str(exc).encode())
        except OSError:
            pass
        return 1
    shim.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
