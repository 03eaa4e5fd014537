"""`python -m bench jobpage`: a job page with 100,000 log lines in Chromium (issue 13).

1. A finished job of one target with `--lines` output events (default 100,000, one line
   `"<n> <text>"` each), written by PostgreSQL (`generate_series`) into a database of the bench's
   own (`bench_jobpage`), and a superuser; daphne with DEBUG off (static files collected, as in
   production).
2. Debian's Chromium through Playwright, signed in through the login form; for each of
   `--repeats` fresh page loads of `/jobs/<id>/`:
   - **first contentful paint** (the browser's own `first-contentful-paint` entry);
   - **first log line**: navigation start until the log shows a row;
   - **all lines**: until the log's counter says every line arrived (the websocket replays them);
   - **scroll**: the log scrolled from the top to the bottom in `--scroll-steps` steps, one per
     animation frame; the frame intervals' median, p95 and max, and frames over 50 ms (long frames);
   - the page's JavaScript heap after loading (Chromium's `performance.memory`).
Goal (issue 13): first paint under 2 s, scrolling smooth (frames near 16.7 ms, none long).
There is no peer: no other tool shows this page. Results: var/bench/jobpage-<run id>.json.
"""
import os
import time

from . import runtime
from .runtime import fmt, median, percentile

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_jobpage"
REDIS_PREFIX = "opsportal-bench-jobpage"
PASSWORD = "bench-jobpage-password-123"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
GOAL_FIRST_PAINT_MS = 2000
LONG_FRAME_MS = 50


def add_arguments(parser):
    parser.add_argument("--lines", type=int, default=100_000, help="output lines of the job (100,000)")
    parser.add_argument("--repeats", type=int, default=3, help="page loads measured (3)")
    parser.add_argument("--scroll-steps", type=int, default=300, help="animation frames of the scroll (300)")


def make_job(lines):
    """A succeeded one-target job with `lines` output events; returns its id."""
    from django.db import connection, transaction
    from django.utils import timezone

    from ops_portal.accounts.models import Environment
    from ops_portal.inventory.choices import Transport
    from ops_portal.inventory.models import Host
    from ops_portal.jobs.models import Job, JobEvent, JobTarget

    from .runtime import NAME_PREFIX, RUN_ID

    now = timezone.now()
    with transaction.atomic():
        environment = Environment.objects.create(name=f"{NAME_PREFIX}{RUN_ID}")
        host = Host.objects.create(environment=environment, name=f"{NAME_PREFIX}{RUN_ID}-h", address="127.0.0.1",
                                   transport=Transport.LOCAL)
        job = Job.objects.create(name=f"{NAME_PREFIX}{RUN_ID} log of {lines} lines", environment=environment,
                                 action="host.command", plan_hash="0" * 64, state="succeeded", targets_total=1,
                                 targets_done=1, created_by_name="bench", params={"command": "seq"},
                                 started=now, finished=now, last_seq=lines)
        JobTarget.objects.create(job=job, index=0, kind="host", ref_id=host.pk, name=host.name, state="ok")
        first = JobEvent.objects.create(job=job, seq=1, time=now, kind="output", target=0, stream="stdout",
                                        text="1 the first line of the bench's log")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO jobs_jobevent (job_id, seq, time, kind, target, stream, text) "
                "SELECT %s, n, %s, 'output', 0, 'stdout', n || ' line of output from the bench, as a build log "
                "or a deploy would print it' FROM generate_series(2, %s) n", [job.pk, now, lines])
    assert first.pk
    return job.pk


def measure_page(page, url, lines, steps):
    """One fresh load of the job page: the figures of the module docstring."""
    page.goto("about:blank")
    started = time.monotonic()
    page.goto(url, wait_until="commit")
    page.wait_for_selector("#log .log-row", timeout=120_000)
    first_line_ms = page.evaluate("performance.now()")
    page.wait_for_function("(n) => (document.querySelector('.js-log-count') || {}).textContent === n + ' lines'",
                           arg=lines, timeout=600_000, polling=50)
    all_ms = page.evaluate("performance.now()")
    wall_s = time.monotonic() - started
    fcp = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null")
    heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
    frames = page.evaluate(
        """(steps) => new Promise((done) => {
             const log = document.getElementById('log');
             const box = document.querySelector('.js-log-follow');
             if (box && box.checked) { box.click(); }
             log.scrollTop = 0;
             const height = log.scrollHeight - log.clientHeight;
             const times = [];
             let i = 0;
             function frame(now) {
               times.push(now);
               if (i > steps) { done(times.slice(1).map((t, k) => t - times[k])); return; }
               log.scrollTop = height * i / steps;
               i += 1;
               requestAnimationFrame(frame);
             }
             requestAnimationFrame(frame);
           })""", steps)
    shown = page.evaluate("document.querySelectorAll('#log .log-row').length")
    last_text = page.evaluate("(() => { const r = document.querySelectorAll('#log .log-row'); "
                              "return r.length ? r[r.length - 1].textContent : ''; })()")
    return {"first_contentful_paint_ms": round(fcp, 1) if fcp else None, "first_line_ms": round(first_line_ms, 1),
            "all_lines_ms": round(all_ms, 1), "wall_s": round(wall_s, 2),
            "frame_median_ms": round(median(frames), 1), "frame_p95_ms": round(percentile(frames, 95), 1),
            "frame_max_ms": round(max(frames), 1), "long_frames": sum(1 for f in frames if f > LONG_FRAME_MS),
            "frames": len(frames), "rows_in_dom": shown, "last_row": last_text[:80],
            "js_heap_mib": round(heap / 2 ** 20, 1) if heap else None}


def _measure(browser, base_url, username, job_id, args):
    runs = []
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url, timeout=60_000)
    print(f"\n{'load':>4} {'FCP ms':>8} {'1st line ms':>11} {'all lines ms':>12} {'frame p50':>9} "
          f"{'p95':>6} {'max':>6} {'long':>5} {'heap MiB':>8}")
    for repeat in range(args.repeats):
        run = measure_page(page, f"{base_url}/jobs/{job_id}/", args.lines, args.scroll_steps)
        runs.append(run)
        print(f"{repeat + 1:>4} {fmt(run['first_contentful_paint_ms'], 1):>8} {fmt(run['first_line_ms'], 1):>11} "
              f"{fmt(run['all_lines_ms'], 1):>12} {fmt(run['frame_median_ms'], 1):>9} "
              f"{fmt(run['frame_p95_ms'], 1):>6} {fmt(run['frame_max_ms'], 1):>6} {run['long_frames']:>5} "
              f"{fmt(run['js_heap_mib'], 1):>8}")
    context.close()
    return runs


def main(args):
    import subprocess

    from playwright.sync_api import sync_playwright

    # A database and Redis namespace of its own, so it runs beside the other benchmarks.
    runtime.DATABASE_URL = runtime.PORTAL_ENV["DATABASE_URL"] = DATABASE_URL
    runtime.REDIS_PREFIX = runtime.PORTAL_ENV["REDIS_PREFIX"] = REDIS_PREFIX
    results = {"machine": runtime.machine(), "args": vars(args) | {"func": None}}
    runtime.setup_django()
    from django.contrib.auth import get_user_model

    started = time.monotonic()
    job_id = make_job(args.lines)
    results["generation_seconds"] = round(time.monotonic() - started, 1)
    print(f"job #{job_id} with {args.lines:,} lines written in {results['generation_seconds']} s")
    admin = get_user_model().objects.create_superuser(f"{runtime.NAME_PREFIX}{runtime.RUN_ID}-admin",
                                                      password=PASSWORD)
    subprocess.run([str(runtime.BIN / "python"), "manage.py", "collectstatic", "--no-input", "-v0"], cwd=runtime.ROOT,
                   env={**os.environ, **runtime.PORTAL_ENV}, check=True)
    web = runtime.start_web()
    results["load_average_start"] = runtime.load_average()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--enable-precise-memory-info"])
        try:
            runs = _measure(browser, web.url, admin.username, job_id, args)
        finally:
            browser.close()
    results["runs"] = runs
    results["load_average_end"] = runtime.load_average()
    keys = ["first_contentful_paint_ms", "first_line_ms", "all_lines_ms", "frame_median_ms", "frame_p95_ms",
            "frame_max_ms", "long_frames", "js_heap_mib"]
    results["median"] = {key: median([r[key] for r in runs if r[key] is not None]) for key in keys}
    m = results["median"]
    verdict = "met" if m["first_contentful_paint_ms"] < GOAL_FIRST_PAINT_MS else "NOT met"
    print(f"\nmedians of {len(runs)}: first paint {fmt(m['first_contentful_paint_ms'], 1)} ms (goal < "
          f"{GOAL_FIRST_PAINT_MS}: {verdict}), first line {fmt(m['first_line_ms'], 1)} ms, all {args.lines:,} lines "
          f"{fmt(m['all_lines_ms'], 1)} ms, scroll frames p50 {fmt(m['frame_median_ms'], 1)} / p95 "
          f"{fmt(m['frame_p95_ms'], 1)} ms, {m['long_frames']} long; load {results['load_average_start']} → "
          f"{results['load_average_end']}")
    print(f"results: {runtime.save_results('jobpage', results)}")
