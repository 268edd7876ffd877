"""Real mail servers for the email tests: Dovecot (IMAP) and aiosmtpd (SMTP) on 127.0.0.1.

Dovecot runs as an unprivileged process (as ``nobody`` when the tests run as root) with a
generated configuration in a temporary directory: users in a passwd-file, Maildir storage,
no TLS, listening on a free port. Under ``CI=true`` a missing ``dovecot`` is a failure.
"""
from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aioimaplib
from aiosmtpd.smtp import SMTP, Envelope, Session

USER_POOL = 500
PASSWORD = "secret"
DOVECOT_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_dovecot() -> str | None:
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in DOVECOT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class Dovecot:
    """One Dovecot for the test session; each test gets its own user (an empty mailbox)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="gw-dovecot-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._free: list[str] = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.uid, self.gid = nobody.pw_uid, nobody.pw_gid
        else:
            self.uid, self.gid = os.geteuid(), os.getegid()
        self.user_name = pwd.getpwuid(self.uid).pw_name
        import grp

        self.group_name = grp.getgrgid(self.gid).gr_name

    @property
    def passwd(self) -> Path:
        return self.root / "passwd"

    def _config(self) -> str:
        r = self.root
        return f"""
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {self.user_name}
default_internal_user = {self.user_name}
default_internal_group = {self.group_name}
first_valid_uid = {self.uid}
first_valid_gid = {self.gid}
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/passwd
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={r}/mail/%u
}}
mail_location = maildir:{r}/mail/%u/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    user = {self.user_name}
    group = {self.group_name}
    mode = 0660
  }}
}}
"""

    def start(self, timeout: float = 15.0) -> "Dovecot":
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # Users are created up front: Dovecot may not notice a passwd-file change made in the
        # same second as its last read, so adding users while it runs is racy.
        self._free = [f"u{uuid.uuid4().hex[:10]}" for _ in range(USER_POOL)]
        self.passwd.write_text("".join(f"{user}:{{PLAIN}}{PASSWORD}\n" for user in self._free))
        (self.root / "dovecot.log").write_text("")
        (self.root / "dovecot.conf").write_text(self._config())
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, self.uid, self.gid)
        command = [self.binary, "-F", "-c", str(self.root / "dovecot.conf")]
        if os.geteuid() == 0:
            command = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", *command]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode()} {self.log()}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start listening on {self.port}: {self.log()}")

    def log(self) -> str:
        try:
            return (self.root / "dovecot.log").read_text()[-3000:]
        except OSError:
            return ""

    def add_user(self) -> str:
        """A user nobody has used yet (an empty mailbox); the password is ``PASSWORD``."""
        if not self._free:
            raise RuntimeError(f"all {USER_POOL} test mailboxes are used; raise USER_POOL")
        return self._free.pop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


class Mailbox:
    """A test's IMAP client for its own user: APPEND, folder management, flags."""

    def __init__(self, port: int, user: str, password: str = PASSWORD) -> None:
        self.port, self.user, self.password = port, user, password

    async def _client(self) -> aioimaplib.IMAP4:
        client = aioimaplib.IMAP4(host="127.0.0.1", port=self.port, timeout=10)
        await client.wait_hello_from_server()
        response = await client.login(self.user, self.password)
        assert response.result == "OK", response
        return client

    async def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        client = await self._client()
        try:
            for raw in messages:
                response = await client.append(raw, mailbox=folder)
                assert response.result == "OK", response
        finally:
            await client.logout()

    async def command(self, name: str, *args: str) -> Any:
        client = await self._client()
        try:
            return await getattr(client, name)(*args)
        finally:
            await client.logout()

    async def flags(self, folder: str = "INBOX") -> dict[int, str]:
        client = await self._client()
        try:
            await client.select(folder)
            response = await client.uid("fetch", "1:*", "(UID FLAGS)")
            found = {}
            for line in response.lines:
                text = bytes(line).decode() if isinstance(line, (bytes, bytearray)) else str(line)
                if "UID" in text and "FLAGS" in text:
                    uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                    found[uid] = text.split("FLAGS (")[1].split(")")[0]
            return found
        finally:
            await client.logout()

    async def uidvalidity(self, folder: str = "INBOX") -> int:
        client = await self._client()
        try:
            response = await client.select(folder)
            for line in response.lines:
                if b"UIDVALIDITY" in bytes(line):
                    return int(bytes(line).split(b"UIDVALIDITY ")[1].split(b"]")[0])
            raise AssertionError(response)
        finally:
            await client.logout()


@dataclass
class SmtpSink:
    """An aiosmtpd handler that records messages and can answer with planned codes."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)  # e.g. ["451 4.3.0 try again later"]
    attempts: int = 0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.plan:
            return self.plan.pop(0)
        data = envelope.original_content or envelope.content
        self.messages.append(message_from_bytes(data if isinstance(data, bytes) else data.encode(),
                                                policy=policy.default))  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 Ok: queued"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


class SmtpServer:
    def __init__(self) -> None:
        self.sink = SmtpSink()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> "SmtpServer":
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: SMTP(self.sink, hostname="mx.test", loop=loop),
                                               "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
