"""pyftpdlib with uploads slowed down, so a test can cut an upload in the middle.

Usage: slow_ftp_server.py PORT DIR USER PASSWORD BYTES_PER_SECOND
"""
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler
from pyftpdlib.servers import FTPServer

PORT, ROOT, USER, PASSWORD, RATE = (
    int(sys.argv[1]),
    sys.argv[2],
    sys.argv[3],
    sys.argv[4],
    int(sys.argv[5]),
)


class Slow(ThrottledDTPHandler):
    read_limit = RATE


authorizer = DummyAuthorizer()
authorizer.add_user(USER, PASSWORD, ROOT, perm="elradfmwMT")
handler = FTPHandler
handler.authorizer = authorizer
handler.dtp_handler = Slow
handler.passive_ports = None
FTPServer(("127.0.0.1", PORT), handler).serve_forever()
