"""Wake the relay from the site after commit instead of from a trigger in every producer's transaction.

The statement trigger of 0002 cost every transaction that wrote events about
a tenth of its commit rate: the trigger machinery and its gate, not the
NOTIFY (`python -m benchmarks.producers` measures both side by side). The
site now sends the wake-up itself once the transaction has committed, at most
once per debounce window per process (`webapp.outbox.client`,
`shared.outbox.WakeUpDebounce`); writers that do not (a script, `psql`) are
found by the relay's poll. The trigger, its function and the row it debounced
on go.
"""

from __future__ import annotations

import importlib

from django.db import migrations

from shared.outbox import OUTBOX_TABLE

# Going back puts the trigger (and its row) back exactly as 0002 made them.
_BEFORE = importlib.import_module("webapp.outbox.migrations.0002_wakeup_trigger")

FORWARD = f"""
DROP TRIGGER IF EXISTS {OUTBOX_TABLE}_wake_relay ON {OUTBOX_TABLE};
DROP FUNCTION IF EXISTS {OUTBOX_TABLE}_wake_relay();
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0006_user_id_indexes")]

    operations = [
        migrations.RunSQL(FORWARD, _BEFORE.FORWARD),
        migrations.DeleteModel(name="WakeUp"),
    ]
