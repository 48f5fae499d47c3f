"""Lift the refusal of a user name from every address (and its counts of
failed sign-ins), or of an address, before its cooling-off period is over."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from arcrm import throttle


class Command(BaseCommand):
    help = "Let a user name, or an address, try to sign in again at once after too many failed sign-ins."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", nargs="?", default="",
                            help="the user name, as it is typed to sign in")
        parser.add_argument("--address", default="", help="an address refused for failures from it")

    def handle(self, *args, username: str, address: str, **options) -> None:
        if not username and not address:
            raise CommandError("Name the user name to unlock, or give --address.")
        if username:
            throttle.forget_name(username)
            self.stdout.write(f"{username} may sign in again, from every address.")
        if address:
            throttle.forget(throttle.SIGN_IN_ADDRESS, address)
            self.stdout.write(f"Sign-ins from {address} are taken again.")
