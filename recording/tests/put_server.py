"""A small HTTP server for the upload tests: PUT (basic auth, folders created) and HEAD.
A chunked PUT (a streamed upload) is written to the file chunk by chunk as it arrives, so a test
sees the file grow while the upload runs.

Usage: put_server.py PORT DIR USER PASSWORD [--short]
--short stores one byte less than it received (to test the size check).
"""
import base64
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

PORT, ROOT, USER, PASSWORD = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
SHORT = "--short" in sys.argv[5:]
EXPECTED = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class Handler(BaseHTTPRequestHandler):
    def _path(self):
        rel = unquote(self.path.split("?", 1)[0]).lstrip("/")
        if ".." in rel.split("/"):
            return None
        return os.path.join(ROOT, rel)

    def _authorized(self):
        if self.headers.get("Authorization") == EXPECTED:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="rec"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_PUT(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._put_chunked()
            return
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if not self._authorized():
            return
        path = self._path()
        if path is None:
            self.send_response(400)
            self.end_headers()
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body[:-1] if SHORT else body)
        self._created()

    def _put_chunked(self):
        path = self._path()
        if not self._authorized() or path is None:
            if path is None:
                self.send_response(400)
                self.end_headers()
            self.close_connection = True
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            while True:
                line = self.rfile.readline()
                if not line:
                    return  # the client went away: keep what came
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()  # the CRLF after the last chunk (no trailers)
                    break
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if len(chunk) < size:
                    return  # the client went away mid-chunk: keep what came
                f.write(chunk)
                f.flush()
            if SHORT:
                f.truncate(max(f.tell() - 1, 0))
        self._created()

    def _created(self):
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):
        if not self._authorized():
            return
        path = self._path()
        if path is None or not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
