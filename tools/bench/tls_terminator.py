"""A TLS front for the emulator, as AWS serves DynamoDB and S3: the functions connect with
`AWS_ENDPOINT_URL=https://127.0.0.1:<port>` and trust a throwaway CA (`JOIP_EXTRA_CA_FILE`)
made here at run time with the `openssl` CLI, and every handshake is recorded, so that the
benchmark can say whether a function's first request paid one or its init did.

Each accepted connection is one TLS session forwarded byte for byte over one TCP connection to
the target (perf.py's recording proxy), so keep-alive and connection reuse on the function's side
are what reaches the emulator, and a handshake is exactly a new pooled connection.

The certificates are what AWS's are in kind: RSA 2048 (DynamoDB and S3 still present RSA 2048
chains), a leaf for 127.0.0.1 and localhost under a CA that exists only for this run.

`stagger_s` makes handshakes that overlap finish one after another, `stagger_s` apart, as a
loaded network does: a client that opens several connections at once and hands a request to
whichever is ready first (hyper's pool does) then ends up with fewer connections than it asked
for, unless it holds each until all are open. perf.py sets it for the first requests it counts.
"""

import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time


def make_certificates(workdir):
    """Writes ca.pem (the root the functions trust) and server.pem/server.key (the leaf this
    terminator presents) into `workdir`; returns their paths."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError("openssl not found: the TLS benchmark makes its CA with the openssl CLI "
                           "(Debian: apt-get install openssl)")
    os.makedirs(workdir, exist_ok=True)
    ca_key, ca = os.path.join(workdir, "ca.key"), os.path.join(workdir, "ca.pem")
    key, csr = os.path.join(workdir, "server.key"), os.path.join(workdir, "server.csr")
    cert, ext = os.path.join(workdir, "server.pem"), os.path.join(workdir, "server.ext")

    def run(*argv):
        subprocess.run([openssl, *argv], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", "/CN=joip benchmark CA (throwaway)",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    # webpki (rustls) wants a v3 leaf naming the address in subjectAltName and, when an extended
    # key usage is present, serverAuth in it.
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid\n")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
        "-days", "2", "-extfile", ext)
    return ca, cert, key


class TlsTerminator:
    """Accepts TLS on 127.0.0.1 and forwards each session to `target` (host, port)."""

    def __init__(self, target, workdir):
        self.target = target
        self.ca_file, cert, key = make_certificates(workdir)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.handshakes = []  # (accepted_at, handshake_done_at), perf_counter seconds
        self.lock = threading.Lock()
        self.stagger_s = 0.0
        self.handshaking = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def between(self, start, end):
        """Handshakes begun (connection accepted) in [start, end)."""
        with self.lock:
            return sum(1 for accepted, _ in self.handshakes if start <= accepted < end)

    def _accept(self):
        while True:
            conn, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(conn, time.perf_counter()),
                             daemon=True).start()

    def _serve(self, raw, accepted):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        backend = None
        with self.lock:
            ahead, self.handshaking = self.handshaking, self.handshaking + 1
        try:
            try:
                if self.stagger_s and ahead:
                    time.sleep(ahead * self.stagger_s)
                tls = self.context.wrap_socket(raw, server_side=True)  # the handshake, blocking
            finally:
                with self.lock:
                    self.handshaking -= 1
            with self.lock:
                self.handshakes.append((accepted, time.perf_counter()))
            backend = socket.create_connection(self.target)
            backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pump(tls, backend)
        except (OSError, ssl.SSLError):
            pass  # a killed function process resets its connections
        finally:
            raw.close()
            if backend is not None:
                backend.close()

    @staticmethod
    def _pump(tls, backend):
        # One thread per session reads and writes both sides: an OpenSSL session must not be
        # read and written from two threads at once. HTTP/1.1 is request then answer, so a
        # blocking sendall cannot wait on the other direction.
        while True:
            if not tls.pending():
                readable, _, _ = select.select([tls, backend], [], [])
            else:
                readable = [tls]
            if tls in readable:
                data = tls.recv(1 << 16)
                if not data:
                    return
                backend.sendall(data)
            if backend in readable:
                data = backend.recv(1 << 16)
                if not data:
                    return
                tls.sendall(data)
