"""Every job belongs to a Batch account.

Jobs made before accounts existed go to the default account (created here, with
fresh keys), and their task directories move under the account's name, where
workers now put them: <node root>/workitems/<account>/<job>/.
"""

import shutil
from pathlib import Path

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def to_default_account(apps, schema_editor):
    from accounts.keys import new_key

    Job = apps.get_model("jobs", "Job")
    BatchAccount = apps.get_model("accounts", "BatchAccount")
    if not Job.objects.exists():
        return
    account, _ = BatchAccount.objects.get_or_create(
        name=settings.BATCHSITE_DEFAULT_ACCOUNT, defaults={"primary_key": new_key(), "secondary_key": new_key()})
    Job.objects.filter(account__isnull=True).update(account=account)
    # Move the old directories aside first: a job may be named like the account.
    root = Path(settings.BATCHSITE_NODE_ROOT) / "workitems"
    if not root.is_dir():
        return
    old = root.with_name("workitems.before-accounts")
    root.rename(old)
    root.mkdir()
    for batch_id in Job.objects.values_list("batch_id", flat=True):
        if (old / batch_id).is_dir():
            (root / account.name).mkdir(exist_ok=True)
            shutil.move(str(old / batch_id), str(root / account.name / batch_id))
    try:
        old.rmdir()
    except OSError:
        pass  # something else was in there: left where it is


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_accounts'),
        ('jobs', '0001_initial'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='job',
            name='job_key_unique',
        ),
        migrations.AddField(
            model_name='job',
            name='account',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='jobs',
                                    to='accounts.batchaccount'),
        ),
        migrations.RunPython(to_default_account, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='job',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='jobs',
                                    to='accounts.batchaccount'),
        ),
        migrations.AddConstraint(
            model_name='job',
            constraint=models.UniqueConstraint(fields=('account', 'key'), name='job_key_unique_in_account'),
        ),
    ]
