"""Batch accounts from the command line: create, list, show keys, rotate a key, grant a user."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.keys import new_key
from accounts.models import BatchAccount, Membership, Role, account_name_validator


class Command(BaseCommand):
    help = "Manage Batch accounts (name and two Shared Key keys) and who may use them."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="the accounts")
        create = sub.add_parser("create", help="a new account with two fresh keys")
        create.add_argument("name")
        keys = sub.add_parser("keys", help="an account's two keys")
        keys.add_argument("name")
        rotate = sub.add_parser("rotate", help="replace one key (clients keep working with the other)")
        rotate.add_argument("name")
        rotate.add_argument("which", choices=("primary", "secondary"))
        grant = sub.add_parser("grant", help="give a dashboard/API user access to an account")
        grant.add_argument("name")
        grant.add_argument("username")
        grant.add_argument("--role", choices=Role.values, default=Role.VIEWER)

    def handle(self, *args, action, **options):
        getattr(self, action)(**options)

    def account(self, name: str) -> BatchAccount:
        account = BatchAccount.objects.filter(name=name).first()
        if account is None:
            raise CommandError(f"no account {name!r}")
        return account

    def list(self, **options):
        for account in BatchAccount.objects.order_by("name"):
            members = ", ".join(f"{m.user.username} ({m.role})" for m in account.members.select_related("user"))
            self.stdout.write(f"{account.name}\t{account.jobs.count()} job(s)\t{members or 'no members'}")

    def create(self, name: str, **options):
        try:
            account_name_validator(name)
        except ValidationError as exc:
            raise CommandError(f"{name!r}: {exc.messages[0]}") from None
        if BatchAccount.objects.filter(name=name).exists():
            raise CommandError(f"account {name!r} exists already")
        self.show(BatchAccount.objects.create(name=name))

    def keys(self, name: str, **options):
        self.show(self.account(name))

    def rotate(self, name: str, which: str, **options):
        account = self.account(name)
        setattr(account, f"{which}_key", new_key())
        account.save(update_fields=[f"{which}_key"])
        self.stdout.write(f"new {which} key of {name}:")
        self.show(account)

    def grant(self, name: str, username: str, role: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        Membership.objects.update_or_create(user=user, account=self.account(name), defaults={"role": role})
        self.stdout.write(f"{username} is now {role} of {name}")

    def show(self, account: BatchAccount):
        self.stdout.write(f"  account name:  {account.name}")
        self.stdout.write(f"  primary key:   {account.primary_key}")
        self.stdout.write(f"  secondary key: {account.secondary_key}")
