import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from accounts.models import Membership, Role, default_account


class Command(BaseCommand):
    help = ("Make sure an admin user and the default Batch account exist. The password comes from "
            "BATCHSITE_ADMIN_PASSWORD (which must pass the password validators), else a random one is made "
            "and printed once. Prints the user's API "
            "token and the account's name and key.")

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("BATCHSITE_ADMIN_USER", "admin"))

    def handle(self, *args, username, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            from_env = os.environ.get("BATCHSITE_ADMIN_PASSWORD")
            if from_env:
                # The same validators as every other password: an environment variable is
                # no reason to let "1" guard the admin.
                try:
                    validate_password(from_env, user=User(username=username))
                except ValidationError as error:
                    raise CommandError(
                        f"BATCHSITE_ADMIN_PASSWORD is not accepted for the admin user {username!r}: "
                        + " ".join(error.messages)
                        + " Set a stronger one, or unset it to get a random password printed once."
                    ) from None
            password = from_env or secrets.token_urlsafe(12)
            user = User.objects.create_superuser(username=username, email="", password=password)
            shown = "(from BATCHSITE_ADMIN_PASSWORD)" if from_env else password
            self.stdout.write(f"  admin user:  {username}")
            self.stdout.write(f"  password:    {shown}   <- shown this once; keep it")
        else:
            self.stdout.write(f"  admin user:  {username} (exists; `python manage.py changepassword {username}` "
                              "to set a new password)")
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(f"  API token:   {token.key}   (Authorization: Token {token.key})")
        account = default_account()
        Membership.objects.get_or_create(user=user, account=account, defaults={"role": Role.OPERATOR})
        self.stdout.write(f"  Batch account: {account.name}   key: {account.primary_key}")
