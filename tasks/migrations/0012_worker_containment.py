from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tasks', '0011_task_in_job_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='worker',
            name='confined',
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name='worker',
            name='containment',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddField(
            model_name='worker',
            name='process_key',
            field=models.CharField(blank=True, default='', max_length=120),
        ),
    ]
