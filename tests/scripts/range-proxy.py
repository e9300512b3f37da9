#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""A registry that misbehaves the way real ones do, in front of a real one.

Usage: range-proxy.py UPSTREAM MODE [LOG]

Listens on 127.0.0.1 (the port is the first line on stdout), forwards
GET requests to http://UPSTREAM and counts the body bytes it sends back
(appended to LOG as "STATUS BYTES RANGE" lines). MODE:

  plain          forward as is
  ignore-range   drop the Range header: the registry answers 200 whole
  refuse-multi   416 for a Range of more than one range
  refuse-416, refuse-400, refuse-501
                 that status for any Range
  bearer         401 with a Bearer challenge until the request carries
                 the token that /token gives for user:secret (basic)
  basic          401 with a Basic challenge until user:secret comes
  truncate       send the headers and half the body, then close
  corrupt        flip a byte in the middle of every body
  corrupt-206:K, truncate-206:K
                 the same for the K-th answer of status 206 only (from
                 1; other answers pass): in a multipart answer, the
                 byte flipped is in the middle of the first part's data
"""
import base64
import http.client
import http.server
import re
import socketserver
import sys
import threading

UPSTREAM, MODE = sys.argv[1], sys.argv[2]
LOG = sys.argv[3] if len(sys.argv) > 3 else None
CREDS = "Basic " + base64.b64encode(b"user:secret").decode()
TOKEN = "sesame-token"
SEEN_206 = [0]
LOCK = threading.Lock()


def first_part(body, ctype):
    """[start, end) of the first part's data of a multipart body, or of
    the whole body."""
    m = re.search(r"boundary=([^;]+)", ctype or "")
    if not m:
        return 0, len(body)
    start = body.index(b"\r\n\r\n") + 4
    end = body.index(b"\r\n--" + m.group(1).strip('"').encode(), start)
    return start, end


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, BrokenPipeError):
            pass  # the client gave up on a truncated answer

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.count(status, len(body))

    def count(self, status, n):
        if LOG:
            with open(LOG, "a") as f:
                f.write("%d %d %s\n" % (status, n,
                                        self.headers.get("Range", "-")))

    def do_GET(self):
        rng = self.headers.get("Range")
        port = self.server.server_address[1]
        if self.path.startswith("/token"):
            if self.headers.get("Authorization") != CREDS:
                return self.reply(401)
            return self.reply(200, b'{"token": "%s"}' % TOKEN.encode(),
                              [("Content-Type", "application/json")])
        if MODE == "bearer" and \
                self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.reply(401, b'{"errors":[]}', [(
                "WWW-Authenticate",
                'Bearer realm="http://127.0.0.1:%d/token",'
                'service="test",scope="repository:x:pull"' % port)])
        if MODE == "basic" and self.headers.get("Authorization") != CREDS:
            return self.reply(401, b"", [("WWW-Authenticate",
                                          'Basic realm="test"')])
        if rng and MODE.startswith("refuse-") and \
                (MODE != "refuse-multi" or "," in rng):
            status = 416 if MODE == "refuse-multi" else int(MODE[7:])
            return self.reply(status, b"no ranges here")
        headers = {}
        if self.headers.get("Accept"):  # which manifests skopeo takes
            headers["Accept"] = self.headers.get("Accept")
        if rng and MODE != "ignore-range":
            headers["Range"] = rng
        conn = http.client.HTTPConnection(UPSTREAM)
        conn.request("GET", self.path, headers=headers)
        up = conn.getresponse()
        body = up.read()
        conn.close()
        kind, hit = MODE, True
        m = re.fullmatch(r"(corrupt|truncate)-206:(\d+)", MODE)
        if m:
            kind, hit = m.group(1), False
            if up.status == 206:
                with LOCK:
                    SEEN_206[0] += 1
                    hit = SEEN_206[0] == int(m.group(2))
        if kind == "corrupt" and hit and len(body) > 2:
            start, end = first_part(body, up.getheader("Content-Type"))
            body = bytearray(body)
            body[(start + end) // 2] ^= 0xff
            body = bytes(body)
        self.send_response(up.status)
        for k in ("Content-Type", "Content-Range", "Docker-Content-Digest"):
            if up.getheader(k):
                self.send_header(k, up.getheader(k))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "truncate" and hit and len(body) > 2:
            body = body[:len(body) // 2]
            self.wfile.write(body)
            self.wfile.flush()
            self.count(up.status, len(body))
            self.close_connection = True
            return
        self.wfile.write(body)
        self.count(up.status, len(body))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
