"""`/accounts/activity/`: the signed-in person's recent security events."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from webapp.activity.selectors import user_activity
from webapp.users.throttling import activity_retry_after, too_many_activity_views_message


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
    if (retry_after := activity_retry_after(request, user_id=user_id)) is not None:
        context = {"page": None, "throttled": too_many_activity_views_message(retry_after)}
        response = render(request, "activity/activity.html", context, status=429)
        response["Retry-After"] = str(retry_after)
        return response
    page = user_activity(user_id=user_id, page=number, page_size=settings.ACTIVITY_PAGE_SIZE)
    return render(request, "activity/activity.html", {"page": page})
