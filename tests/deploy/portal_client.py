"""A deployed portal's client as a user's CI would be: sign in, make an API token, launch a job, wait.

Standard library only, so the deployment tests run it on this machine against compose's published
port and, unchanged, inside the stack's web container (`docker exec -i web python - URL ...`),
where no port is published.

    python portal_client.py URL run USER PASSWORD ENVIRONMENT COMMAND   -> {"token", "job": {...}, "output"}
    python portal_client.py URL job TOKEN JOB_ID                        -> {"job": {...}, "output"}
"""
import http.cookiejar
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

FINISHED = {"succeeded", "failed", "canceled", "timed_out", "lost", "rejected", "expired"}


class Portal:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.token = None

    def _cookie(self, name):
        return next((c.value for c in self.cookies if c.name == name), None)

    def request(self, method, path, data=None, *, form=False):
        headers = {"Accept": "application/json"}
        body = None
        if data is not None:
            if form:
                body = urllib.parse.urlencode(data).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                body = json.dumps(data).encode()
                headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        elif method != "GET" and self._cookie("csrftoken"):
            headers["X-CSRFToken"] = self._cookie("csrftoken")
            headers["Referer"] = self.base + "/"
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            # Generous: a sign-in hashes its password, slow on a machine as busy as CI's.
            with self.opener.open(request, timeout=120) as response:
                return response.status, response.read().decode(), response.geturl()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), exc.geturl()

    def sign_in(self, username, password):
        status, _, _ = self.request("GET", "/login/")
        assert status == 200, f"GET /login/ answered {status}"
        status, body, url = self.request("POST", "/login/", {
            "username": username, "password": password, "csrfmiddlewaretoken": self._cookie("csrftoken")}, form=True)
        assert status == 200 and not url.rstrip("/").endswith("/login"), f"sign-in failed ({status} at {url})"
        assert self._cookie("sessionid"), "no session after signing in"

    def create_token(self, name):
        status, body, _ = self.request("POST", "/api/tokens/", {"name": name})
        assert status == 201, f"POST /api/tokens/ answered {status}: {body}"
        self.token = json.loads(body)["key"]
        return self.token

    def launch(self, environment, command):
        status, body, _ = self.request("POST", "/api/jobs/", {
            "environment": environment, "action": "host.command", "params": {"command": command},
            "selector": {"all": True}})
        assert status == 201, f"POST /api/jobs/ answered {status}: {body}"
        return json.loads(body)

    def job(self, job_id):
        status, body, _ = self.request("GET", f"/api/jobs/{job_id}/")
        assert status == 200, f"GET /api/jobs/{job_id}/ answered {status}: {body}"
        job = json.loads(body)
        status, output, _ = self.request("GET", f"/api/jobs/{job_id}/output/")
        assert status == 200, f"GET /api/jobs/{job_id}/output/ answered {status}"
        return job, output

    def wait(self, job_id, timeout=180):
        deadline = time.monotonic() + timeout
        while True:
            job, output = self.job(job_id)
            if job["state"] in FINISHED or time.monotonic() > deadline:
                return job, output
            time.sleep(0.5)


def main(argv):
    portal = Portal(argv[1])
    if argv[2] == "run":
        username, password, environment, command = argv[3:7]
        portal.sign_in(username, password)
        token = portal.create_token("deploy-test")
        job, output = portal.wait(portal.launch(environment, command)["id"])
        result = {"token": token, "job": job, "output": output}
    elif argv[2] == "job":
        portal.token = argv[3]
        job, output = portal.job(int(argv[4]))
        result = {"job": job, "output": output}
    else:
        raise SystemExit(f"unknown command {argv[2]!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
