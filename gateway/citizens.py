"""``gateway citizen export|erase --phone NUMBER | --email ADDRESS``: one citizen's data."""
from __future__ import annotations

import argparse
import json
import sys

from config.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="citizen_command", required=True)
    for name, help_text in (("export", "print everything stored about a citizen as JSON"),
                            ("erase", "anonymise a citizen's data, keeping the statistics")):
        cmd = sub.add_parser(name, help=help_text)
        who = cmd.add_mutually_exclusive_group(required=True)
        who.add_argument("--phone", help="the citizen's phone number (national or international format)")
        who.add_argument("--email", help="the citizen's email address")
        if name == "erase":
            cmd.add_argument("--yes", action="store_true", help="confirm: erasure cannot be undone")


def citizen_urn(phone: str | None, email: str | None, country: str) -> str:
    """The URN the gateway stores for this phone number or address; ValueError if unreadable."""
    if phone:
        import phonenumbers

        try:
            number = phonenumbers.parse(phone.strip(), country)
        except phonenumbers.NumberParseException as exc:
            raise ValueError(f"not a phone number: {exc}") from exc
        if not phonenumbers.is_possible_number(number):
            raise ValueError("not a possible phone number")
        return "tel:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    address = (email or "").strip().lower()
    if "@" not in address or any(ch.isspace() for ch in address):
        raise ValueError("not an email address")
    return "mailto:" + address


def run(args: argparse.Namespace, settings: Settings) -> int:
    from conversations.privacy import delete_orphan_files, erase_citizen, export_citizen
    from store.db import Database

    try:
        urn = citizen_urn(args.phone, args.email, settings.country)
    except ValueError as exc:
        print(f"gateway citizen: {exc}", file=sys.stderr)
        return 2
    if args.citizen_command == "erase" and not args.yes:
        print("gateway citizen erase: erasure cannot be undone; add --yes to confirm", file=sys.stderr)
        return 2
    db = Database(settings.effective_database_url)
    try:
        if args.citizen_command == "export":
            with db.session() as session:
                data = export_citizen(session, urn)
        else:
            from conversations.clock import Clock

            with db.session() as session:
                erasure = erase_citizen(session, urn, now=Clock().now(), actor="admin:cli")
            data = None
            if erasure is not None:
                removed = delete_orphan_files(settings.data_dir, erasure.orphan_files)
                data = {"erased": True, **erasure.as_dict(), "files_deleted": removed}
    finally:
        db.close()
    if data is None:
        print("gateway citizen: nobody with this phone number or address is known", file=sys.stderr)
        return 1
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")
    return 0
