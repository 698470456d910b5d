# Policy publication becomes a proposal that a privacy officer approves (two-person rule).
# Existing rows are published versions: `status` defaults to "published" and they keep their numbers.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0005_bakeoff_candidates'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='policyversion',
            name='approved_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='policyversion',
            name='approved_by_name',
            field=models.CharField(blank=True, max_length=150),
        ),
        migrations.AddField(
            model_name='policyversion',
            name='base_number',
            field=models.PositiveIntegerField(blank=True, help_text='The published version the author diffed against.', null=True),
        ),
        migrations.AddField(
            model_name='policyversion',
            name='decided_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='policyversion',
            name='decision_reason',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='policyversion',
            name='status',
            field=models.CharField(choices=[('proposed', 'Waiting for a privacy officer'), ('published', 'Published'), ('rejected', 'Rejected'), ('superseded', 'Superseded by another version')], default='published', max_length=12),
        ),
        migrations.AlterField(
            model_name='policyversion',
            name='number',
            field=models.PositiveIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name='policyversion',
            name='published_at',
            field=models.DateTimeField(auto_now_add=True, help_text='When the text was proposed.'),
        ),
        migrations.AddConstraint(
            model_name='policyversion',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('number__isnull', False), ('status', 'published')), models.Q(('number__isnull', True), models.Q(('status', 'published'), _negated=True)), _connector='OR'), name='policy_number_iff_published'),
        ),
        migrations.AddConstraint(
            model_name='policyversion',
            constraint=models.CheckConstraint(condition=models.Q(('approved_by', models.F('published_by')), _negated=True), name='policy_approver_not_author'),
        ),
    ]
