"""Addresses stored with a quoted local part that spells a plain one (`"ada"@x`) become plain (`ada@x`).

From now on sign-in and sign-up read `"ada"@x` as `ada@x`; an account stored
with the quoted spelling would otherwise no longer be found. An account whose
unquoted address another account already has is left as it is: its quoted
spelling now leads to the other account, so it can no longer be signed in to
(the squatting this rule ends), and an administrator may delete it.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import migrations
from django.db.models.functions import Lower

# As in webapp.users.models when this migration was written.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def unquote_local_parts(apps: Any, schema_editor: Any) -> None:
    # The connection migrate runs on (the owner's): the site's role has no rights yet on a new database.
    users = apps.get_model("users", "User").objects.using(schema_editor.connection.alias)
    for user in users.filter(email__startswith='"').order_by("pk"):
        local, _, domain = user.email.rpartition("@")
        if len(local) < 2 or not local.endswith('"'):
            continue
        content = _QUOTED_PAIR.sub(r"\1", local[1:-1])
        if not _DOT_ATOM.match(content):
            continue
        address = f"{content}@{domain}"
        taken = users.annotate(folded=Lower("email")).filter(folded=address.lower()).exclude(pk=user.pk)
        if not taken.exists():
            users.filter(pk=user.pk).update(email=address)


class Migration(migrations.Migration):
    dependencies = [("users", "0002_email_verified_at_and_one_line_names")]

    operations = [migrations.RunPython(unquote_local_parts, migrations.RunPython.noop, elidable=True)]
