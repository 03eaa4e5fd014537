"""Static files: served from the finders in development and tests, without a warning per request."""
import warnings

from django.test import Client


def test_static_files_are_served_without_a_missing_directory_warning(db):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = Client().get("/static/js/charts.js")  # a new client builds the middleware anew
        body = b"".join(response.streaming_content)
    assert response.status_code == 200 and body
    assert not [w for w in caught if "No directory at" in str(w.message)]
