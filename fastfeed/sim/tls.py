"""Certificates for the simulator, made at start-up with ``trustme``.

A trusted CA signs the server certificate (for ``127.0.0.1``, ``::1`` and ``localhost``); its PEM
is written to a temporary directory so that any client (picows, websockets, curl) can load it.
A second, *rogue* CA is made on demand for the "certificate the client does not trust" fault.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import trustme

NAMES = ("127.0.0.1", "::1", "localhost")


def _trustme():
    # Imported when certificates are made, not with the package: trustme is the ``sim``
    # extra, and fastfeed's CLI (its parser reads fastfeed.sim.config) must work without it.
    import trustme

    return trustme


class SimTLS:
    """Holds the CA, the server certificate and the server ``SSLContext``.

    The server context is one object for the lifetime of the simulator; :meth:`use_rogue_cert`
    reloads its certificate chain, so new handshakes (WS and REST) present a certificate from an
    unknown CA while established connections are untouched.
    """

    def __init__(self, directory: str | None = None):
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="fastfeed-sim-")
        os.makedirs(self.dir, exist_ok=True)
        self.ca = _trustme().CA()
        self.cert = self.ca.issue_cert(*NAMES)
        self.ca_file = os.path.join(self.dir, "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self._rogue: trustme.LeafCert | None = None
        self.rogue = False
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(self.server_context)

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the simulator's CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def use_rogue_cert(self, on: bool = True) -> None:
        """Present a certificate signed by a CA no client trusts (``on=False`` switches back)."""
        cert = self.cert
        if on:
            if self._rogue is None:
                self._rogue = _trustme().CA().issue_cert(*NAMES)
            cert = self._rogue
        cert.configure_cert(self.server_context)
        self.rogue = on

    def cleanup(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
