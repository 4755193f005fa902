#!/usr/bin/env python3
"""Write a throwaway CA and a server certificate for 127.0.0.1 and localhost.

    gen_certs.py OUTDIR

writes OUTDIR/ca.pem (the CA certificate: what a client trusts with --ca),
OUTDIR/cert.pem (the server certificate chain, leaf first) and OUTDIR/key.pem
(the server's ECDSA P-256 private key, PKCS#8 PEM). Uses `trustme` from the
test venv, so no `openssl` binary is needed. Test use only.
"""

import sys
from pathlib import Path

import trustme
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = Path(sys.argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(outdir / "ca.pem"))
    (outdir / "cert.pem").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key = load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    (outdir / "key.pem").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    print(f"wrote {outdir}/ca.pem, cert.pem, key.pem")
    return 0


if __name__ == "__main__":
    sys.exit(main())
