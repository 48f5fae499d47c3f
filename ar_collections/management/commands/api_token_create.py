from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ar_collections.api import api_token_create, api_token_user_refusal


class Command(BaseCommand):
    help = (
        "Make a token for the JSON API acting as a user, with that user's rights (only managers may "
        "record invoices and payments). The token is printed this once and kept only as a hash: "
        "a token lost is revoked in the admin and another made."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="the username the token acts as")
        parser.add_argument("--name", required=True, help='what uses the token, e.g. "ERP"')

    def handle(self, *args, user: str, name: str, **options):
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("--name is 1 to 100 characters: what uses the token, e.g. \"ERP\"")
        found = get_user_model().objects.filter(username=user, is_active=True).first()
        if found is None:
            raise CommandError(f"there is no active user {user!r}")
        # The same users as the tokens page: never a superuser, never one who may not read accounts.
        if refusal := api_token_user_refusal(found):
            raise CommandError(refusal)
        token, secret = api_token_create(user=found, name=name)
        self.stderr.write(f"API token {token.pk} “{token.name}” acting as {found.username}; it is shown "
                          "this once, keep it where the ERP reads its secrets:")
        self.stdout.write(secret)
