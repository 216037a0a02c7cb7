"""`/accounts/activity/`: the signed-in person's recent security events."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from webapp.activity.selectors import user_activity


@login_required
@require_GET
@never_cache
def activity(request: HttpRequest) -> HttpResponse:
    """One page of the user's own sign-ins, failed attempts and account changes, newest first."""
    try:
        number = int(request.GET.get("page", "1"))
    except ValueError:
        number = 1
    user_id = request.user.pk
    assert user_id is not None  # login_required let only a signed-in user through
    page = user_activity(user_id=user_id, page=number, page_size=settings.ACTIVITY_PAGE_SIZE)
    return render(request, "activity/activity.html", {"page": page})
