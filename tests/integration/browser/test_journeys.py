"""What a person does on the site, done in a real browser, each page checked for accessibility."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from tests.integration.browser.conftest import Site
from tests.integration.web.factories import STRONG_PASSWORD, UserFactory
from tests.support.clickhouse import ClickHouse
from tests.support.waiting import wait_until
from webapp.mail.services import email_dispatch_due
from webapp.privacy.services import erasure_process_due
from webapp.users.models import User

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NEW_PASSWORD = "amber-Lantern-meadow-58"
WRONG_PASSWORD = "not-the-Password-41"
NEW_PASSWORD_LABEL = re.compile(r"^New password:?$")
RESET_LINK = re.compile(r"https?://\S+/accounts/password/reset/\S+/\S+/")
VERIFY_LINK = re.compile(r"https?://\S+/accounts/email/verify/\S+/(\S+)/")


def test_a_new_person_signs_up_signs_out_fails_once_signs_in_and_sees_it_all_on_the_activity_page(
    site: Site, clickhouse: ClickHouse
) -> None:
    page = site.open("/accounts/register/")
    site.check("sign-up")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert")).to_contain_text("Please correct the errors below.")
    expect(page.get_by_label("E-mail address")).to_have_attribute("aria-invalid", "true")
    site.check("sign-up-errors")
    assert not User.objects.exists()

    page.get_by_label("E-mail address").fill("holly@example.com")
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_label("First name").fill("Holly")
    page.get_by_label("Last name").fill("Gennero")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text("You are signed in as Holly.")).to_be_visible()
    site.check("home")

    site.sign_out()
    site.sign_in("holly@example.com", WRONG_PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct e-mail address and password")
    site.check("sign-in-errors")
    site.sign_in("holly@example.com", STRONG_PASSWORD)
    expect(page.get_by_text("You are signed in as Holly.")).to_be_visible()

    page.get_by_role("link", name="Activity", exact=True).click()
    rows = page.locator("tbody tr")
    # The newest sign-in may still be in the outbox ("processing"); the relay
    # carries everything into ClickHouse within moments, and the page shows it.
    for _ in range(50):
        if page.get_by_text("processing").count() == 0 and rows.count() == 5:
            break
        page.wait_for_timeout(200)
        page.reload()
    # ClickHouse 18.16 keeps whole seconds: events of one second may come in any order.
    whats = page.locator("tbody tr td:first-child").all_inner_texts()
    assert sorted(whats) == [
        "Account created",
        "Failed sign-in attempt",
        "Signed in",
        "Signed in",
        "Signed out",
    ]
    times = page.locator("tbody time").evaluate_all("nodes => nodes.map(n => n.dateTime)")
    assert times == sorted(times, reverse=True)
    addresses = dict(zip(whats, page.locator("tbody tr td:nth-child(3)").all_inner_texts(), strict=True))
    assert addresses == {
        "Account created": "not recorded",  # a sign-up event keeps no address
        "Failed sign-in attempt": "127.0.0.1",
        "Signed in": "127.0.0.1",
        "Signed out": "127.0.0.1",
    }
    expect(page.get_by_text("processing")).to_have_count(0)
    site.check("activity")
    user_id = User.objects.get().pk
    owned = f"visitParamExtractUInt(event_context, 'user_id') = {user_id}"
    assert clickhouse.value(f"SELECT count() FROM event_log_dedup WHERE {owned}") == "5"


def test_a_person_renames_themselves_and_changes_their_password(site: Site) -> None:
    user = UserFactory.create(first_name="John", last_name="McClane")
    site.sign_in(user.email, STRONG_PASSWORD)
    page = site.open("/accounts/")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    site.check("account")

    page.get_by_label("First name").fill("")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_text("This field is required.")).to_be_visible()
    page.get_by_label("First name").fill("Johnny")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_role("status")).to_contain_text("Your name is saved.")
    expect(page.get_by_text("Johnny McClane")).to_be_visible()

    page.get_by_role("link", name="Change your password").click()
    page.get_by_label("Old password").fill(WRONG_PASSWORD)
    page.get_by_label(NEW_PASSWORD_LABEL).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your old password was entered incorrectly.")).to_be_visible()
    site.check("password-change-errors")
    page.get_by_label("Old password").fill(STRONG_PASSWORD)
    page.get_by_label(NEW_PASSWORD_LABEL).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is changed.")

    site.sign_out()
    site.sign_in(user.email, NEW_PASSWORD)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.get_by_role("link", name="Activity", exact=True).click()
    expect(page.get_by_role("cell", name=re.compile("Password changed"))).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile(r"Profile changed \(first name\)"))).to_be_visible()


def test_a_person_who_forgot_their_password_sets_a_new_one_through_the_emailed_link(site: Site) -> None:
    user = UserFactory.create()
    page = site.open("/accounts/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    site.check("password-reset")
    page.get_by_label("E-mail address").fill("not an address")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_text("Enter a valid email address.")).to_be_visible()
    page.get_by_label("E-mail address").fill(user.email.upper())
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    site.check("password-reset-sent")

    email_dispatch_due()  # what the worker's sweep does
    [message] = mail.outbox
    assert message.to == [user.email]
    link = RESET_LINK.search(str(message.body))
    assert link is not None, message.body
    page.goto(link.group(0))
    page.get_by_label(NEW_PASSWORD_LABEL).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill("something-Else-22")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_text("The two password fields didn\u2019t match.")).to_be_visible()
    site.check("password-reset-new-password")
    page.get_by_label(NEW_PASSWORD_LABEL).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("heading", name="Your password is set")).to_be_visible()
    site.check("password-reset-complete")

    page.goto(link.group(0))
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()
    site.check("password-reset-link-spent")
    site.sign_in(user.email, NEW_PASSWORD)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_a_new_person_verifies_their_address_with_a_link_sent_again_from_the_account_page(site: Site) -> None:
    page = site.open("/accounts/register/")
    page.get_by_label("E-mail address").fill("john@example.com")
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_label("First name").fill("John")
    page.get_by_label("Last name").fill("McClane")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("status")).to_contain_text("Please confirm your address")
    page.get_by_role("link", name="Account", exact=True).click()
    expect(page.get_by_text("not verified yet")).to_be_visible()
    page.get_by_role("button", name="Send the link again").click()
    expect(page.get_by_role("status")).to_contain_text("We sent a new link to john@example.com")

    email_dispatch_due()  # what the worker's sweep does
    welcome, again = (message for message in mail.outbox if message.to == ["john@example.com"])
    # Nothing typed at sign-up reaches an address nobody has verified yet.
    assert "John" not in str(welcome.body) + str(again.body)
    assert "McClane" not in str(welcome.body) + str(again.body)
    first_link, link = VERIFY_LINK.search(str(welcome.body)), VERIFY_LINK.search(str(again.body))
    assert first_link is not None
    assert link is not None
    site.sign_out()  # the link is the proof: no session needed
    page.goto(link.group(0))
    expect(page.get_by_role("heading", name="Confirm your e-mail address")).to_be_visible()
    assert page.url.endswith("/confirm/")
    assert link.group(1) not in page.url
    site.check("email-verify-confirm")
    page.get_by_role("button", name="Confirm my address").click()
    expect(page.get_by_role("heading", name="Your e-mail address is verified")).to_be_visible()
    site.check("email-verified")

    page.goto(first_link.group(0))  # every earlier link is spent with it
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()
    site.check("email-verify-link-spent")
    site.sign_in("john@example.com", STRONG_PASSWORD)
    page.get_by_role("link", name="Account", exact=True).click()
    expect(page.get_by_text("verified", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Send the link again")).to_have_count(0)
    page.get_by_role("link", name="Activity", exact=True).click()
    expect(page.get_by_role("cell", name=re.compile("E-mail address verified"))).to_be_visible()


def test_a_person_deletes_their_account_and_their_activity_is_erased(
    site: Site, clickhouse: ClickHouse
) -> None:
    user = UserFactory.create()
    user_id = user.pk
    site.sign_in(user.email, STRONG_PASSWORD)
    owned = f"visitParamExtractUInt(event_context, 'user_id') = {user_id}"
    wait_until(lambda: clickhouse.value(f"SELECT count() FROM event_log WHERE {owned}") == "1", timeout=30)
    page = site.open("/accounts/")
    page.get_by_role("link", name="Delete your account").click()
    site.check("account-delete")
    page.get_by_label("Your password").fill(WRONG_PASSWORD)
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_text("The password is not correct.")).to_be_visible()
    assert User.objects.filter(pk=user_id).exists()

    page.get_by_label("Your password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("status")).to_contain_text("Your account is deleted.")
    assert not User.objects.filter(pk=user_id).exists()
    erasure_process_due()  # what the worker does right after the deletion commits

    wait_until(lambda: clickhouse.value(f"SELECT count() FROM event_log WHERE {owned}") == "0", timeout=30)
    site.sign_in(user.email, STRONG_PASSWORD)
    expect(page.get_by_role("alert")).to_be_visible()
    page.goto(f"{site.url}/accounts/activity/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


@pytest.mark.without_javascript
def test_every_page_works_in_a_browser_that_runs_no_javascript(site: Site) -> None:
    page = site.open("/accounts/register/")
    page.get_by_label("E-mail address").fill("not an address")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert")).to_contain_text("Please correct the")
    expect(page.get_by_label("E-mail address")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("E-mail address").fill("argyle@example.com")
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_label("First name").fill("Argyle")
    page.get_by_label("Last name").fill("Driver")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text("You are signed in as Argyle.")).to_be_visible()

    page.get_by_role("link", name="Account", exact=True).click()
    page.get_by_label("Last name").fill("Limo")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_text("Argyle Limo")).to_be_visible()
    page.get_by_role("link", name="Change your password").click()
    page.get_by_label("Old password").fill(STRONG_PASSWORD)
    page.get_by_label(NEW_PASSWORD_LABEL).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is changed.")
    page.get_by_role("link", name="Activity", exact=True).click()
    expect(page.get_by_role("cell", name=re.compile("Password changed"))).to_be_visible()

    site.sign_out()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("E-mail address").fill("argyle@example.com")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    assert page.evaluate("() => document.scripts.length") == 0
