# Account changes that grant access or oversight wait for a second admin (two-person rule).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('portal', '0002_auth_hardening'),
    ]

    operations = [
        migrations.CreateModel(
            name='PendingAccountChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('account', 'Role, team or activation'), ('mfa_reset', 'Reset second factor'), ('password_reset', 'Force password reset')], default='account', max_length=16)),
                ('fields', models.JSONField(blank=True, default=dict, help_text='The values to set: role, team (id), is_active.')),
                ('before', models.JSONField(blank=True, default=dict, help_text="The account's values when proposed.")),
                ('new_account', models.BooleanField(default=False, help_text='Proposed while creating the account.')),
                ('proposed_by_name', models.CharField(max_length=150)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('decided_by_name', models.CharField(blank=True, max_length=150)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('outcome', models.CharField(choices=[('pending', 'Waiting for a second admin'), ('approved', 'Approved and applied'), ('rejected', 'Rejected'), ('withdrawn', 'Withdrawn by the proposer')], default='pending', max_length=12)),
                ('reason', models.TextField(blank=True)),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('proposed_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('target', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='pending_changes', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at', '-pk'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('outcome', 'pending')), fields=('target', 'kind'), name='one_pending_change_per_account_kind'), models.CheckConstraint(condition=models.Q(('proposed_by', models.F('target')), _negated=True), name='change_not_proposed_for_self'), models.CheckConstraint(condition=models.Q(('outcome', 'withdrawn'), models.Q(('decided_by', models.F('proposed_by')), _negated=True), _connector='OR'), name='change_decided_by_a_second_admin'), models.CheckConstraint(condition=models.Q(('decided_by', models.F('target')), _negated=True), name='change_not_decided_by_its_target')],
            },
        ),
    ]
