"""Reads what the results stream holds for one job, from outside toolfan:
a few lines of the NATS protocol over a socket (standard library only) and
JetStream's $JS.API.STREAM.MSG.GET with next_by_subj, one message a request.
So scripts/chaos can tell a task the cluster never answered from one whose
result is stored but was not passed on to the caller."""

import base64
import json
import socket


def _line(f):
    line = f.readline()
    if not line:
        raise OSError("connection closed")
    return line.decode().split()


def job_results(host, port, job, prefix="toolfan", timeout=3, limit=5000):
    """[(stream sequence, result)] for every message on <prefix>.result.<job>."""
    subject, stream = f"{prefix}.result.{job}", f"{prefix.upper()}_RESULTS"
    sock = socket.create_connection((host, port), timeout=timeout)
    f = sock.makefile("rb")
    try:
        _line(f)  # INFO
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,'
                     b'"protocol":1,"name":"chaos-probe"}\r\nSUB _INBOX.chaosprobe 1\r\n')
        out, seq = [], 0
        while len(out) < limit:
            req = json.dumps({"seq": seq + 1, "next_by_subj": subject}).encode()
            sock.sendall(b"PUB $JS.API.STREAM.MSG.GET.%s _INBOX.chaosprobe %d\r\n%s\r\n"
                         % (stream.encode(), len(req), req))
            while True:
                words = _line(f)
                if words[0] == "PING":
                    sock.sendall(b"PONG\r\n")
                elif words[0] == "-ERR":
                    raise OSError(" ".join(words))
                elif words[0] in ("MSG", "HMSG"):
                    body = f.read(int(words[-1]) + 2)[:-2]
                    if words[0] == "HMSG":  # a status only: 503, no responders
                        body = body[int(words[-2]):]
                        if not body:
                            raise OSError("no responders for the stream")
                    break
            reply = json.loads(body)
            if "error" in reply:
                if reply["error"].get("code") == 404:
                    return out
                raise OSError(reply["error"].get("description", "error"))
            seq = reply["message"]["seq"]
            out.append((seq, json.loads(base64.b64decode(reply["message"]["data"]))))
        return out
    finally:
        sock.close()


def first_results(urls, job):
    """{index: (sequence, result)} of the first stored result per index, read
    from the first NATS server that answers; None if none does."""
    for url in urls.split(","):
        host, _, port = url.replace("nats://", "").rpartition(":")
        try:
            first = {}
            for seq, result in job_results(host, int(port), job):
                first.setdefault(result.get("index"), (seq, result))
            return first
        except (OSError, ValueError, KeyError):
            continue
    return None
