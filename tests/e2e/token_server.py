"""A Docker registry token server for the e2e tests (the protocol of
distribution's docs/spec/auth/token.md), on 127.0.0.1:<free port>, in a thread.

    GET /token?service=S&scope=repository:NAME:pull[,push]   (Basic credentials)
    -> 200 {"token": JWT, "access_token": JWT, "expires_in": 300, "issued_at": ...}
    -> 401 {"errors": [{"code": "UNAUTHORIZED", ...}]} for a wrong user or password

The JWT is signed RS256 with a key whose self-signed certificate is the registry's
`rootcertbundle`; its header's `kid` is the libtrust key ID of that public key, which
is how docker-registry finds the key without an x5c chain. What a user may do:
  grants[user] = "push": the actions asked for (skopeo filling the registry);
  grants[user] = "pull": pull only, on the repository asked for;
  grants[user] = "other/app": pull on that repository whatever was asked (a token the
                 registry must refuse for any other repository).
Every request is recorded (user, service, scopes; never the password).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ISSUER = "podctl-test-issuer"
SERVICE = "podctl-test-registry"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key) -> str:
    """docker/libtrust's KeyID: base32 of the first 240 bits of sha256(DER
    SubjectPublicKeyInfo), in 12 groups of 4 joined by ':'."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


@dataclass
class TokenServer:
    users: dict[str, str]  # user -> password
    grants: dict[str, str]  # user -> "push" | "pull" | "<repository>" (see the module doc)
    cert: Path  # the registry's rootcertbundle
    port: int = 0
    requests: list[dict] = field(default_factory=list)
    expires_in: int = 300
    _key: rsa.RSAPrivateKey | None = None
    _httpd: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def auth_yaml(self) -> str:
        """The registry config's auth section trusting this server."""
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {SERVICE}\n"
                f"    issuer: {ISSUER}\n    rootcertbundle: {self.cert}\n")

    def start(self) -> TokenServer:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                .sign(self._key, hashes.SHA256()))
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status, doc = server.answer(urlsplit(self.path), self.headers.get("Authorization", ""))
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet: pytest shows what the tests assert
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, name="token-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def answer(self, url, authorization: str) -> tuple[int, dict]:
        query = parse_qs(url.query)
        user = password = None
        if authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        scopes = [s for v in query.get("scope", []) for s in v.split(" ") if s]
        self.requests.append({"path": url.path, "user": user, "service": query.get("service", [None])[0],
                              "scopes": scopes})
        if url.path != "/token":
            return 404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]}
        if user is None or self.users.get(user) != password:
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]}
        token = self.token(user, query.get("service", [""])[0], self._access(user, scopes))
        return 200, {"token": token, "access_token": token, "expires_in": self.expires_in,
                     "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def _access(self, user: str, scopes: list[str]) -> list[dict]:
        grant = self.grants.get(user, "pull")
        if grant not in ("push", "pull"):
            return [{"type": "repository", "name": grant, "actions": ["pull"]}]
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            allowed = [a for a in actions.split(",") if a == "pull" or grant == "push"]
            access.append({"type": "repository", "name": name, "actions": allowed})
        return access

    def token(self, user: str, service: str, access: list[dict]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": libtrust_key_id(self._key.public_key())}
        claims = {"iss": ISSUER, "sub": user, "aud": service, "exp": now + self.expires_in,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())).encode()
        signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + _b64url(signature)
