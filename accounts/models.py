"""Batch accounts: a name and two keys, and who on the dashboard may see or change what.

Every job belongs to one account; an account sees only its own jobs and their
tasks, files and counts. Clients sign API requests with either key (Shared Key),
so a key can be rotated while the other keeps working.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from .keys import new_key

# Azure's rule for Batch account names: 3 to 24 lower-case letters and digits.
account_name_validator = RegexValidator(r"^[a-z0-9]{3,24}$", "3 to 24 lower-case letters and digits")


class BatchAccount(models.Model):
    name = models.CharField(max_length=24, unique=True, validators=[account_name_validator])
    primary_key = models.CharField(max_length=128, default=new_key)
    secondary_key = models.CharField(max_length=128, default=new_key)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    def keys(self) -> tuple[str, str]:
        return self.primary_key, self.secondary_key


def default_account() -> BatchAccount:
    """The account `make run` sets up (BATCHSITE_DEFAULT_ACCOUNT), made on first use."""
    account, _ = BatchAccount.objects.get_or_create(name=settings.BATCHSITE_DEFAULT_ACCOUNT)
    return account


class Role(models.TextChoices):
    VIEWER = "viewer"  # reads jobs, tasks, files and counts
    OPERATOR = "operator"  # and adds, changes, terminates and deletes them


class Membership(models.Model):
    """A dashboard or API user's access to one account (superusers reach every account)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batch_accounts")
    account = models.ForeignKey(BatchAccount, on_delete=models.CASCADE, related_name="members")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "account"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} on {self.account} ({self.role})"
