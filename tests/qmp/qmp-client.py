#!/usr/bin/env python3
"""A small QMP client: connects to a QMP unix socket, negotiates, runs
commands, hands over file descriptors, waits for events.

  qmp-client.py SOCKET [options] [COMMAND ...]

COMMAND is one QMP command, either a JSON object ('{"execute": "stop"}') or
the shorthand 'NAME KEY=VALUE KEY:=JSON ...' (KEY=VALUE gives a string,
KEY:=JSON any JSON value, e.g. 'object-add qom-type=iommufd id=io0 fd=iommu'
or 'add-fd fdset-id:=1'). Commands run in order: first the --fd handovers,
then --file's lines, then the COMMAND arguments, then the --wait-event waits.

Every reply and event is printed on stdout as one JSON line, as it arrives.
Exit status: 0 when every command succeeded (with --expect-error: when every
command got an error reply, of --error-class if given) and every awaited event came;
1 otherwise (a line on stderr says which); 2 for a usage error; 3 when the
connection or the protocol failed (no socket, no greeting, a closed
connection, a reply that is not JSON).

Only the standard library (socket.send_fds for SCM_RIGHTS), so it runs on
any Python 3.9+, in the rig's L1 too.
"""

import argparse
import json
import os
import shlex
import socket
import sys
import time


class ProtocolError(Exception):
    pass


class Failure(Exception):
    pass


class Qmp:
    def __init__(self, path, timeout):
        self.timeout = timeout
        self.buf = b""
        self.events = []  # events seen and not yet waited for
        self.next_id = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            raise ProtocolError(f"connect {path}: {e.strerror or e}")
        greeting = self._message(time.monotonic() + timeout)
        if "QMP" not in greeting:
            raise ProtocolError(f"no QMP greeting: {json.dumps(greeting)}")
        emit(greeting)

    def _message(self, deadline):
        """The next message (reply or event) from the server."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError
            except OSError as e:
                raise ProtocolError(f"recv: {e.strerror or e}")
            if not chunk:
                raise ProtocolError("the server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        if not line.strip():
            return self._message(deadline)
        try:
            msg = json.loads(line)
        except ValueError:
            raise ProtocolError(f"not JSON: {line[:200]!r}")
        if not isinstance(msg, dict):
            raise ProtocolError(f"not a JSON object: {line[:200]!r}")
        return msg

    def execute(self, cmd, fds=()):
        """Sends CMD (a dict; fds go along with it as SCM_RIGHTS); returns its reply."""
        self.next_id += 1
        cmd = dict(cmd, id=self.next_id)
        data = json.dumps(cmd).encode() + b"\n"
        try:
            if fds:
                # The fds travel with the first byte; the rest follows.
                sent = socket.send_fds(self.sock, [data], list(fds))
                self.sock.sendall(data[sent:])
            else:
                self.sock.sendall(data)
        except OSError as e:
            raise ProtocolError(f"send: {e.strerror or e}")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                msg = self._message(deadline)
            except TimeoutError:
                raise Failure(f"{cmd['execute']}: no reply within {self.timeout:g} s")
            emit(msg)
            if "event" in msg:
                self.events.append(msg)
            elif msg.get("id") == self.next_id or "id" not in msg:
                return msg

    def wait_event(self, name, match, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                data = ev.get("data") or {}
                if ev.get("event") == name and all(str(data.get(k)) == v for k, v in match.items()):
                    del self.events[i]
                    return ev
            try:
                msg = self._message(deadline)
            except TimeoutError:
                want = name + "".join(f" {k}={v}" for k, v in match.items())
                raise Failure(f"event {want}: not within {timeout:g} s")
            emit(msg)
            if "event" in msg:
                self.events.append(msg)


def emit(msg):
    print(json.dumps(msg, separators=(",", ":")), flush=True)


def parse_command(text):
    """A JSON object, or the shorthand 'NAME KEY=VALUE KEY:=JSON ...'."""
    text = text.strip()
    if text.startswith("{"):
        try:
            cmd = json.loads(text)
        except ValueError as e:
            raise ValueError(f"command {text!r}: bad JSON: {e}")
        if not isinstance(cmd, dict) or not isinstance(cmd.get("execute"), str):
            raise ValueError(f"command {text!r}: a JSON command is an object with \"execute\"")
        return cmd
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise ValueError(f"command {text!r}: {e}")
    if not words:
        raise ValueError("empty command")
    cmd = {"execute": words[0]}
    args = {}
    for w in words[1:]:
        key, eq, value = w.partition("=")
        if not eq or not key or key == ":":
            raise ValueError(f"command {text!r}: argument {w!r} is not KEY=VALUE or KEY:=JSON")
        if key.endswith(":"):
            try:
                args[key[:-1]] = json.loads(value)
            except ValueError as e:
                raise ValueError(f"command {text!r}: argument {w!r}: bad JSON: {e}")
        else:
            args[key] = value
    if args:
        cmd["arguments"] = args
    return cmd


def parse_event(text):
    name, _, rest = text.partition(":")
    if not name:
        raise ValueError(f"--wait-event {text!r}: no event name")
    match = {}
    for kv in filter(None, rest.split(",")):
        k, eq, v = kv.partition("=")
        if not eq or not k:
            raise ValueError(f"--wait-event {text!r}: {kv!r} is not KEY=VALUE")
        match[k] = v
    return name, match


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], usage=__doc__.split("\n\n")[1].strip(),
                                 epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("socket", help="the QMP server's unix socket")
    ap.add_argument("commands", nargs="*", metavar="COMMAND", help="a QMP command (JSON or shorthand)")
    ap.add_argument("--file", metavar="FILE", help="more commands, one a line ('-': stdin; # comments)")
    ap.add_argument("--fd", action="append", default=[], metavar="NAME=PATH",
                    help="open PATH read-write and hand it over: getfd fdname=NAME (PATH '&N': inherited fd N)")
    ap.add_argument("--wait-event", action="append", default=[], metavar="EVENT[:KEY=VALUE,...]",
                    help="after the commands, wait for EVENT (with these data fields); repeatable, in order")
    ap.add_argument("--timeout", type=float, default=30, metavar="S", help="seconds for each reply (default 30)")
    ap.add_argument("--event-timeout", type=float, default=60, metavar="S",
                    help="seconds for each --wait-event (default 60)")
    ap.add_argument("--expect-error", action="store_true", help="each command must be refused")
    ap.add_argument("--error-class", metavar="CLASS", help="with --expect-error: and with this error class")
    args = ap.parse_intermixed_args()

    try:
        cmds = []
        for spec in args.fd:
            name, eq, path = spec.partition("=")
            if not eq or not name or not path:
                raise ValueError(f"--fd {spec!r}: want NAME=PATH")
            cmds.append(({"execute": "getfd", "arguments": {"fdname": name}}, path))
        lines = []
        if args.file:
            with (sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")) as f:
                lines = [l for l in f.read().splitlines() if l.strip() and not l.lstrip().startswith("#")]
        cmds += [(parse_command(c), None) for c in lines + args.commands]
        waits = [parse_event(e) for e in args.wait_event]
    except (ValueError, OSError) as e:
        print(f"qmp-client: {e}", file=sys.stderr)
        return 2

    try:
        qmp = Qmp(args.socket, args.timeout)
        reply = qmp.execute({"execute": "qmp_capabilities"})
        if "return" not in reply:
            raise ProtocolError(f"qmp_capabilities refused: {json.dumps(reply)}")
        for cmd, path in cmds:
            fds, opened = [], None
            if path is not None:
                try:
                    if path.startswith("&"):
                        fds = [int(path[1:])]
                        os.fstat(fds[0])
                    else:
                        opened = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                        fds = [opened]
                except (ValueError, OSError) as e:
                    raise Failure(f"--fd {cmd['arguments']['fdname']}={path}: {getattr(e, 'strerror', None) or e}")
            try:
                reply = qmp.execute(cmd, fds)
            finally:
                if opened is not None:
                    os.close(opened)  # the server holds its own copy now
            name = cmd["execute"]
            if not args.expect_error:
                if "error" in reply:
                    err = reply["error"]
                    raise Failure(f"{name}: {err.get('class')}: {err.get('desc')}")
            elif "error" not in reply:
                raise Failure(f"{name}: succeeded, but an error was expected")
            elif args.error_class and reply["error"].get("class") != args.error_class:
                raise Failure(f"{name}: error class {reply['error'].get('class')}, expected {args.error_class}")
        for name, match in waits:
            qmp.wait_event(name, match, args.event_timeout)
    except Failure as e:
        print(f"qmp-client: {e}", file=sys.stderr)
        return 1
    except ProtocolError as e:
        print(f"qmp-client: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
