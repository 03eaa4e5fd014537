from tests import factories


def sign_in(page, base, username, password=factories.PASSWORD):
    """Sign in through the login form and land on the dashboard."""
    page.goto(base + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
